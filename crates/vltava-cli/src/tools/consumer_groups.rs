//! `vltava consumer-groups`: `kafka-consumer-groups.sh` — list (filtered
//! by state and type), describe (offsets, members, state) classic and
//! KIP-848 consumer groups alike, reset offsets, delete. Output follows
//! Kafka 4's tool column for column.

use super::{BOOTSTRAP_DEFAULT, BOOTSTRAP_ENV};
use std::collections::{BTreeMap, BTreeSet};

use clap::{ArgGroup, Args};
use vltava_client::admin::{GroupDescription, GroupListing, MemberDescription};
use vltava_client::error::codes;
use vltava_client::{Admin, OffsetSpec, TopicPartition};

use super::fail;

/// List, describe, delete consumer groups and reset their offsets (kafka-consumer-groups.sh).
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("action").required(true).args(["list", "describe", "delete", "reset_offsets", "delete_offsets"])))]
pub struct ConsumerGroupsArgs {
    /// The server(s) to connect to; default $VLTAVA_BOOTSTRAP, else 127.0.0.1:9092 (the
    /// zero-config broker).
    #[arg(long, env = BOOTSTRAP_ENV, default_value = BOOTSTRAP_DEFAULT, value_name = "String: server to connect to")]
    pub bootstrap_server: String,
    /// Client settings for the admin connection (client.id); security
    /// settings and anything else are refused, never ignored.
    #[arg(long, value_name = "String: command config property file")]
    pub command_config: Option<String>,
    /// List all consumer groups (with --state and/or --type: filtered, with those columns).
    #[arg(long)]
    pub list: bool,
    /// Describe consumer group(s) and list offset lag.
    #[arg(long)]
    pub describe: bool,
    /// Delete consumer group(s).
    #[arg(long)]
    pub delete: bool,
    /// Reset offsets of a consumer group (one group at a time; the group must be inactive).
    #[arg(long)]
    pub reset_offsets: bool,
    /// Delete a group's committed offsets for the --topic(s) (one group at
    /// a time; a group still consuming a topic keeps that topic's offsets).
    #[arg(long)]
    pub delete_offsets: bool,
    /// The timeout in milliseconds for each request to the broker (e.g.
    /// while describing a group that is rebalancing).
    #[arg(long, default_value_t = 5_000, value_name = "Long: timeout (ms)")]
    pub timeout: u64,
    /// With --reset-offsets: print the new offsets as CSV (topic,partition,
    /// offset; group first when several groups) for --from-file.
    #[arg(long)]
    pub export: bool,
    /// With --reset-offsets: reset to the offsets in this CSV file, as
    /// --export writes it.
    #[arg(long, value_name = "String: path to CSV file")]
    pub from_file: Option<String>,
    /// The consumer group(s) (repeatable).
    #[arg(long = "group", value_name = "String: consumer group")]
    pub groups: Vec<String>,
    /// Apply to all consumer groups.
    #[arg(long)]
    pub all_groups: bool,
    /// With --describe: show members.
    #[arg(long)]
    pub members: bool,
    /// With --describe: show group state. With --list: show the STATE column,
    /// and list only groups in these states (comma-separated, case-insensitive) if given.
    #[arg(long, value_name = "String: state", num_args = 0..=1)]
    pub state: Option<Option<String>>,
    /// With --list: show the TYPE column, and list only groups of these types
    /// (classic, consumer; comma-separated, case-insensitive) if given.
    #[arg(long = "type", value_name = "String: type", num_args = 0..=1)]
    pub group_type: Option<Option<String>>,
    /// With --describe: show offsets (the default).
    #[arg(long)]
    pub offsets: bool,
    /// With --describe --members: show assignments and epochs; with --describe --state: epochs.
    #[arg(long)]
    pub verbose: bool,
    /// The topic(s) to reset, as 'topic' or 'topic:0,1,2' (repeatable).
    #[arg(long = "topic", value_name = "String: topic")]
    pub topics: Vec<String>,
    /// Reset offsets of every topic the group has offsets for.
    #[arg(long)]
    pub all_topics: bool,
    /// Reset to the earliest offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// Reset to the latest offset.
    #[arg(long)]
    pub to_latest: bool,
    /// Reset to the current offset.
    #[arg(long)]
    pub to_current: bool,
    /// Reset to this offset.
    #[arg(long, value_name = "Long: offset")]
    pub to_offset: Option<i64>,
    /// Shift the current offset by n (may be negative).
    #[arg(
        long,
        value_name = "Long: number-of-offsets",
        allow_hyphen_values = true
    )]
    pub shift_by: Option<i64>,
    /// Reset to the offset at this time: 'YYYY-MM-DDTHH:mm:SS.sss' (UTC unless a zone like +01:00 or Z follows).
    #[arg(long, value_name = "String: datetime")]
    pub to_datetime: Option<String>,
    /// Reset to the offset at now minus this duration: 'PnDTnHnMnS'.
    #[arg(long, value_name = "String: duration")]
    pub by_duration: Option<String>,
    /// Only show the result (default).
    #[arg(long)]
    pub dry_run: bool,
    /// Execute the reset.
    #[arg(long)]
    pub execute: bool,
}

pub async fn run(args: ConsumerGroupsArgs) -> anyhow::Result<()> {
    let command = super::read_command_config(args.command_config.as_deref())?;
    if args.delete_offsets && (args.groups.is_empty() || args.topics.is_empty()) {
        return fail("Option [delete-offsets] takes the following options: [group], [topic]");
    }
    if args.delete_offsets && (args.groups.len() > 1 || args.all_groups) {
        return fail("Option [delete-offsets] supports one consumer group at a time");
    }
    if args.export && !args.reset_offsets {
        return fail("Option [export] can only be used with [reset-offsets]");
    }
    let client = super::connect_with_timeout(
        &args.bootstrap_server,
        &command,
        "vltava-consumer-groups",
        std::time::Duration::from_millis(args.timeout.max(1)),
    )
    .await?;
    let admin = Admin::new(client);
    if args.list {
        return list(&admin, &args).await;
    }
    if args.delete_offsets {
        return delete_offsets(&admin, &args.groups[0], &args.topics).await;
    }
    let groups = if args.all_groups {
        admin
            .list_groups()
            .await?
            .into_iter()
            .map(|g| g.group_id)
            .collect()
    } else if args.groups.is_empty() {
        return fail("Option [describe|delete|reset-offsets] takes one of these options: [all-groups], [group]");
    } else {
        args.groups.clone()
    };
    if args.delete {
        return delete(&admin, &groups).await;
    }
    if args.reset_offsets {
        return reset(&admin, &args, &groups).await;
    }
    for g in &groups {
        describe(&admin, &args, g).await?;
    }
    Ok(())
}

/// Kafka pads with `%-Ns`; wide values just push the next column.
fn pad(s: &str, width: usize) -> String {
    format!("{s:<width$}")
}

fn width(min: usize, values: impl Iterator<Item = usize>) -> usize {
    values.fold(min, usize::max)
}

/// Kafka's `GroupState` names valid for consumer groups, in its enum order.
const GROUP_STATES: &[&str] = &[
    "PreparingRebalance",
    "CompletingRebalance",
    "Stable",
    "Dead",
    "Empty",
    "Assigning",
    "Reconciling",
];

/// Kafka's `GroupType` names the tool accepts and prints.
const GROUP_TYPES: &[&str] = &["Classic", "Consumer"];

/// Parses a `--state` or `--type` list into Kafka's spelling of each name,
/// or fails as Kafka does ("Invalid state list", "Invalid types list"),
/// naming the valid ones.
fn parse_names(input: &str, valid: &[&str], what: (&str, &str)) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for name in input.split(',').map(str::trim) {
        match valid.iter().find(|v| v.eq_ignore_ascii_case(name)) {
            Some(v) => out.push(v.to_string()),
            None => {
                return fail(format!(
                    "Invalid {} list '{input}'. Valid {} are: {}",
                    what.0,
                    what.1,
                    valid.join(", ")
                ))
            }
        }
    }
    Ok(out)
}

async fn list(admin: &Admin, args: &ConsumerGroupsArgs) -> anyhow::Result<()> {
    if args.state.is_none() && args.group_type.is_none() {
        for g in admin.list_groups().await? {
            println!("{}", g.group_id);
        }
        return Ok(());
    }
    let filter = |value: &Option<Option<String>>, valid: &[&str], what| match value {
        Some(Some(v)) if !v.is_empty() => parse_names(v, valid, what),
        _ => Ok(Vec::new()),
    };
    let states = filter(&args.state, GROUP_STATES, ("state", "states"))?;
    let types = filter(&args.group_type, GROUP_TYPES, ("types", "types"))?;
    let groups = admin.list_groups_filtered(&states, &types).await?;
    print_listing(&groups, args.group_type.is_some(), args.state.is_some());
    Ok(())
}

/// `--list --type/--state`: GROUP padded to the longest id (at least 15)
/// plus 10, then TYPE and/or STATE padded to 20, as Kafka prints them.
fn print_listing(groups: &[GroupListing], with_type: bool, with_state: bool) {
    let gw = width(15, groups.iter().map(|g| g.group_id.len())) + 10;
    let line = |id: &str, group_type: &str, state: &str| {
        let mut line = pad(id, gw);
        if with_type {
            line.push_str(&format!(" {}", pad(group_type, 20)));
        }
        if with_state {
            line.push_str(&format!(" {}", pad(state, 20)));
        }
        println!("{line}");
    };
    line("GROUP", "TYPE", "STATE");
    for g in groups {
        line(&g.group_id, &type_name(&g.group_type), or_unknown(&g.state));
    }
}

/// `classic` → `Classic`, as Kafka's `GroupType` prints.
fn type_name(group_type: &str) -> String {
    GROUP_TYPES
        .iter()
        .find(|t| t.eq_ignore_ascii_case(group_type))
        .map_or("Unknown".to_string(), |t| t.to_string())
}

fn or_unknown(state: &str) -> &str {
    if state.is_empty() {
        "Unknown"
    } else {
        state
    }
}

async fn describe(admin: &Admin, args: &ConsumerGroupsArgs, group: &str) -> anyhow::Result<()> {
    let d = admin.describe_any_group(group).await?;
    match d.state.as_str() {
        "Dead" => return fail(format!("Error: Consumer group '{group}' does not exist.")),
        "Empty" => eprintln!("\nConsumer group '{group}' has no active members."),
        "PreparingRebalance" | "CompletingRebalance" | "Assigning" | "Reconciling" => {
            eprintln!("\nWarning: Consumer group '{group}' is rebalancing.")
        }
        _ => {}
    }
    // Kafka's precedence: offsets (also the default), then members, then state.
    if args.offsets || (!args.members && args.state.is_none()) {
        print_offsets(admin, &d).await
    } else if args.members {
        print_members(&d, args.verbose);
        Ok(())
    } else {
        print_state(admin, &d, args.verbose);
        Ok(())
    }
}

fn print_state(admin: &Admin, d: &GroupDescription, verbose: bool) {
    let coordinator = admin
        .client()
        .cluster()
        .brokers
        .get(&d.coordinator)
        .map_or(format!("({})", d.coordinator), |b| {
            format!("{}  ({})", b.addr(), b.id)
        });
    let gw = width(15, [d.group_id.len()].into_iter());
    let cw = width(25, [coordinator.len()].into_iter());
    let strategy = if d.protocol.is_empty() {
        "-"
    } else {
        &d.protocol
    };
    let epoch = |e: Option<i32>| e.map_or_else(|| "-".to_string(), |e| e.to_string());
    let line = |cells: [&str; 7]| {
        let mut line = format!(
            "{} {} {} {} ",
            pad(cells[0], gw),
            pad(cells[1], cw),
            pad(cells[2], 20),
            pad(cells[3], 20)
        );
        if verbose {
            line.push_str(&format!("{} {} ", pad(cells[4], 15), pad(cells[5], 25)));
        }
        line.push_str(cells[6]);
        line
    };
    println!(
        "\n{}",
        line([
            "GROUP",
            "COORDINATOR (ID)",
            "ASSIGNMENT-STRATEGY",
            "STATE",
            "GROUP-EPOCH",
            "TARGET-ASSIGNMENT-EPOCH",
            "#MEMBERS"
        ])
    );
    println!(
        "{}",
        line([
            &d.group_id,
            &coordinator,
            strategy,
            &d.state,
            &epoch(d.group_epoch),
            &epoch(d.target_assignment_epoch),
            &d.members.len().to_string()
        ])
    );
}

/// `--members`: Kafka 4's columns; GROUP-INSTANCE-ID only when a member has
/// one; `--verbose` adds each member's epoch and current and target
/// assignments (`-` for what a classic group does not have).
fn print_members(d: &GroupDescription, verbose: bool) {
    let dash = || "-".to_string();
    let current: Vec<String> = d
        .members
        .iter()
        .map(|m| assignment_text(&m.assignment))
        .collect();
    let target: Vec<String> = d
        .members
        .iter()
        .map(|m| {
            m.target_assignment
                .as_deref()
                .map_or_else(dash, assignment_text)
        })
        .collect();
    let with_instance = d.members.iter().any(|m| m.group_instance_id.is_some());
    let gw = width(15, [d.group_id.len()].into_iter());
    let mw = width(15, d.members.iter().map(|m| m.member_id.len()));
    let iw = width(
        17,
        d.members
            .iter()
            .map(|m| m.group_instance_id.as_ref().map_or(0, String::len)),
    );
    let hw = width(15, d.members.iter().map(|m| m.host.len()));
    let cw = width(15, d.members.iter().map(|m| m.client_id.len()));
    let aw = width(20, current.iter().map(String::len));
    let tw = width(20, target.iter().map(String::len));
    let line = |cells: [&str; 10]| {
        let mut line = format!("{} {} ", pad(cells[0], gw), pad(cells[1], mw));
        if with_instance {
            line.push_str(&format!("{} ", pad(cells[2], iw)));
        }
        line.push_str(&format!(
            "{} {} {} ",
            pad(cells[3], hw),
            pad(cells[4], cw),
            pad(cells[5], 15)
        ));
        if verbose {
            line.push_str(&format!(
                "{} {} {} {}",
                pad(cells[6], 15),
                pad(cells[7], aw),
                pad(cells[8], 15),
                pad(cells[9], tw)
            ));
        }
        line
    };
    println!(
        "\n{}",
        line([
            "GROUP",
            "CONSUMER-ID",
            "GROUP-INSTANCE-ID",
            "HOST",
            "CLIENT-ID",
            "#PARTITIONS",
            "CURRENT-EPOCH",
            "CURRENT-ASSIGNMENT",
            "TARGET-EPOCH",
            "TARGET-ASSIGNMENT"
        ])
    );
    for (i, m) in d.members.iter().enumerate() {
        let epoch = |e: Option<i32>| e.map_or_else(dash, |e| e.to_string());
        println!(
            "{}",
            line([
                &d.group_id,
                &m.member_id,
                m.group_instance_id.as_deref().unwrap_or(""),
                &m.host,
                &m.client_id,
                &m.assignment.len().to_string(),
                &epoch(m.member_epoch),
                &current[i],
                // Kafka prints the group's target assignment epoch here.
                &epoch(d.target_assignment_epoch),
                &target[i]
            ])
        );
    }
}

/// `topic:0,1;other:2` (topics and partitions sorted), or `-` when empty,
/// as Kafka 4 prints assignments.
fn assignment_text(tps: &[TopicPartition]) -> String {
    let mut by_topic: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    for (t, p) in tps {
        by_topic.entry(t).or_default().insert(*p);
    }
    if by_topic.is_empty() {
        return "-".into();
    }
    by_topic
        .into_iter()
        .map(|(t, ps)| {
            let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{t}:{}", ps.join(","))
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// One row of the offsets table; `None` prints as `-`.
struct Row {
    topic: Option<String>,
    partition: Option<i32>,
    current: Option<i64>,
    log_end: Option<i64>,
    member: Option<MemberDescription>,
}

async fn print_offsets(admin: &Admin, d: &GroupDescription) -> anyhow::Result<()> {
    let committed = admin.group_offsets(&d.group_id).await?;
    let mut owner: BTreeMap<TopicPartition, &MemberDescription> = BTreeMap::new();
    for m in &d.members {
        for tp in &m.assignment {
            owner.insert(tp.clone(), m);
        }
    }
    let tps: BTreeSet<TopicPartition> = committed.keys().chain(owner.keys()).cloned().collect();
    let wanted: Vec<(TopicPartition, OffsetSpec)> = tps
        .iter()
        .map(|tp| (tp.clone(), OffsetSpec::Latest))
        .collect();
    let log_end = admin.list_offsets(&wanted).await?;
    let mut rows: Vec<Row> = tps
        .iter()
        .map(|tp| Row {
            topic: Some(tp.0.clone()),
            partition: Some(tp.1),
            current: committed.get(tp).copied(),
            log_end: log_end.get(tp).copied(),
            member: owner.get(tp).map(|m| (*m).clone()),
        })
        .collect();
    // Members with no partitions still get a line, as in Kafka.
    for m in d.members.iter().filter(|m| m.assignment.is_empty()) {
        rows.push(Row {
            topic: None,
            partition: None,
            current: None,
            log_end: None,
            member: Some(m.clone()),
        });
    }
    // Nothing to show (no members, no offsets): Kafka prints no table.
    if rows.is_empty() {
        return Ok(());
    }
    let dash = || "-".to_string();
    let gw = width(15, [d.group_id.len()].into_iter());
    let tw = width(
        15,
        rows.iter().map(|r| r.topic.as_ref().map_or(1, String::len)),
    );
    let mw = width(
        15,
        rows.iter()
            .map(|r| r.member.as_ref().map_or(1, |m| m.member_id.len())),
    );
    let hw = width(
        15,
        rows.iter()
            .map(|r| r.member.as_ref().map_or(1, |m| m.host.len())),
    );
    println!(
        "\n{} {} {} {} {} {} {} {} CLIENT-ID",
        pad("GROUP", gw),
        pad("TOPIC", tw),
        pad("PARTITION", 10),
        pad("CURRENT-OFFSET", 15),
        pad("LOG-END-OFFSET", 15),
        pad("LAG", 15),
        pad("CONSUMER-ID", mw),
        pad("HOST", hw)
    );
    for r in rows {
        let lag = match (r.current, r.log_end) {
            (Some(c), Some(e)) => (e - c).max(0).to_string(),
            _ => dash(),
        };
        println!(
            "{} {} {} {} {} {} {} {} {}",
            pad(&d.group_id, gw),
            pad(&r.topic.unwrap_or_else(dash), tw),
            pad(&r.partition.map_or_else(dash, |p| p.to_string()), 10),
            pad(&r.current.map_or_else(dash, |o| o.to_string()), 15),
            pad(&r.log_end.map_or_else(dash, |o| o.to_string()), 15),
            pad(&lag, 15),
            pad(
                &r.member.as_ref().map_or_else(dash, |m| m.member_id.clone()),
                mw
            ),
            pad(&r.member.as_ref().map_or_else(dash, |m| m.host.clone()), hw),
            r.member.as_ref().map_or_else(dash, |m| m.client_id.clone()),
        );
    }
    Ok(())
}

async fn delete(admin: &Admin, groups: &[String]) -> anyhow::Result<()> {
    let results = admin.delete_groups(groups).await?;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(g, r)| {
            r.as_ref().err().map(|e| {
                format!(
                    "* Group '{g}' could not be deleted due to: {}",
                    error_name(e)
                )
            })
        })
        .collect();
    if failed.is_empty() {
        let names: Vec<String> = groups.iter().map(|g| format!("'{g}'")).collect();
        println!(
            "Deletion of requested consumer groups ({}) was successful.",
            names.join(", ")
        );
        Ok(())
    } else {
        fail(format!(
            "Deletion of some consumer groups failed:\n{}",
            failed.join("\n")
        ))
    }
}

fn error_name(e: &vltava_client::KafkaError) -> String {
    format!("{}: {}", super::java_exception(e.code), e.text())
}

/// `--topic` as `topic` (every partition: `None`) or `topic:0,1,2`.
fn parse_topic_spec(spec: &str) -> anyhow::Result<(String, Option<Vec<i32>>)> {
    let Some((topic, list)) = spec.split_once(':') else {
        return Ok((spec.to_string(), None));
    };
    let mut partitions = Vec::new();
    for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match p.parse::<i32>() {
            Ok(p) => partitions.push(p),
            Err(_) => return fail(format!("Error: invalid partition '{p}' in --topic {spec}")),
        }
    }
    Ok((topic.to_string(), Some(partitions)))
}

/// `--delete-offsets`: OffsetDelete for every partition of the topics
/// (or the listed ones, `topic:0,1`), reported in Kafka's table. A
/// group-level error is also printed as Kafka does, and the tool then exits
/// 1 (Kafka's exits 0) so that scripts notice.
async fn delete_offsets(admin: &Admin, group: &str, topics: &[String]) -> anyhow::Result<()> {
    let mut partitions = Vec::new();
    // Topics that could not be described: reported as "Not Provided".
    let mut unresolved: BTreeMap<String, vltava_client::KafkaError> = BTreeMap::new();
    for spec in topics {
        match parse_topic_spec(spec)? {
            (t, Some(ps)) => partitions.extend(ps.into_iter().map(|p| (t.clone(), p))),
            (_, None) => match admin.client().topic(spec, false).await {
                Ok(info) => {
                    partitions.extend(info.partitions.iter().map(|p| (spec.clone(), p.partition)))
                }
                Err(vltava_client::Error::Kafka(e)) => {
                    unresolved.insert(spec.clone(), e);
                }
                Err(e) => return Err(e.into()),
            },
        }
    }
    partitions.sort();
    partitions.dedup();
    let (group_error, results) = match admin.delete_group_offsets(group, &partitions).await {
        Ok(results) => (None, results),
        Err(vltava_client::Error::Kafka(e)) => {
            let all = partitions
                .iter()
                .map(|tp| (tp.clone(), Err(e.clone())))
                .collect();
            (Some(e), all)
        }
        Err(e) => return Err(e.into()),
    };
    let first_partition_error = results.values().find_map(|r| r.as_ref().err()).cloned();
    let first_error = group_error
        .clone()
        .or(first_partition_error)
        .or_else(|| unresolved.values().next().cloned());
    let mut failed = false;
    match first_error.as_ref().map(|e| e.code) {
        None => println!(
            "Request succeed for deleting offsets with topic {} group {group}",
            topics.join(", ")
        ),
        Some(code) => {
            let message = match code {
                codes::INVALID_GROUP_ID => format!("'{group}' is not valid."),
                codes::GROUP_ID_NOT_FOUND => format!("'{group}' does not exist."),
                codes::GROUP_AUTHORIZATION_FAILED => format!("Access to '{group}' is not authorized."),
                codes::NON_EMPTY_GROUP => format!("Deleting offsets of a consumer group '{group}' is forbidden if the group is not empty."),
                codes::GROUP_SUBSCRIBED_TO_TOPIC
                | codes::TOPIC_AUTHORIZATION_FAILED
                | codes::UNKNOWN_TOPIC_OR_PARTITION => {
                    "Encounter some partition level error, see the follow-up details:".to_string()
                }
                _ => format!("Encounter some unknown error: {}", first_error.as_ref().map_or(String::new(), error_name)),
            };
            eprintln!("\nError: {message}");
            failed = true;
        }
    }
    let row = |topic: &str, partition: &str, status: &str| {
        format!(
            "\n{} {} {}",
            pad(topic, 30),
            pad(partition, 15),
            pad(status, 15)
        )
    };
    let mut out = row("TOPIC", "PARTITION", "STATUS");
    let mut rows: Vec<(TopicPartition, String)> = results
        .iter()
        .map(|(tp, r)| {
            let status = match r {
                Ok(()) => "Successful".to_string(),
                Err(e) => format!("Error: :{}", error_name(e)),
            };
            (tp.clone(), status)
        })
        .collect();
    rows.extend(
        unresolved
            .iter()
            .map(|(t, e)| ((t.clone(), -1), format!("Error: :{}", error_name(e)))),
    );
    rows.sort();
    for ((t, p), status) in rows {
        let partition = if p >= 0 {
            p.to_string()
        } else {
            "Not Provided".to_string()
        };
        out.push_str(&row(&t, &partition, &status));
    }
    println!("{out}");
    if failed {
        // Said above, as Kafka's tool says it.
        return Err(super::Failure(String::new()).into());
    }
    Ok(())
}

/// The rows of a `--from-file` reset plan, by group. Each line is
/// `topic,partition,offset` (only when one --group is given) or
/// `group,topic,partition,offset`, CSV-quoted as Kafka writes them.
pub fn parse_reset_plan(
    text: &str,
    single_group: Option<&str>,
) -> anyhow::Result<BTreeMap<String, BTreeMap<TopicPartition, i64>>> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            csv_fields(l)
                .or_else(|e| fail(format!("Error: reading the reset plan: {e} in line '{l}'")))
        })
        .collect::<anyhow::Result<_>>()?;
    let without_group = single_group.is_some() && rows.first().is_some_and(|r| r.len() == 3);
    let mut plan: BTreeMap<String, BTreeMap<TopicPartition, i64>> = BTreeMap::new();
    for (row, line) in rows.iter().zip(&lines) {
        let (group, rest) = match (without_group, single_group) {
            (true, Some(g)) if row.len() == 3 => (g.to_string(), &row[..]),
            _ if row.len() == 4 => (row[0].clone(), &row[1..]),
            _ => {
                return fail(format!(
                    "Error: reading the reset plan: expected {} fields in line '{line}'",
                    if without_group {
                        "topic,partition,offset"
                    } else {
                        "group,topic,partition,offset"
                    }
                ))
            }
        };
        let (Ok(partition), Ok(offset)) =
            (rest[1].trim().parse::<i32>(), rest[2].trim().parse::<i64>())
        else {
            return fail(format!(
                "Error: reading the reset plan: partition and offset must be numbers in line '{line}'"
            ));
        };
        plan.entry(group)
            .or_default()
            .insert((rest[0].clone(), partition), offset);
    }
    Ok(plan)
}

/// One CSV line's fields: `"` quotes a field, `""` inside quotes is a quote.
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) if field.is_empty() => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => {
                quoted = false;
                if chars.peek().is_some_and(|c| *c != ',') {
                    return Err("text after a closing quote".to_string());
                }
            }
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return Err("an unclosed quote".to_string());
    }
    fields.push(field);
    Ok(fields)
}

/// A CSV field, quoted only when it must be.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) || value.starts_with(' ') || value.ends_with(' ') {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// `--export`: Kafka's CSV of a reset, group first when several groups.
pub fn export_csv(plans: &[(String, BTreeMap<TopicPartition, i64>)], with_group: bool) -> String {
    let mut out = String::new();
    for (group, offsets) in plans {
        for ((t, p), o) in offsets {
            if with_group {
                out.push_str(&format!("{},", csv_field(group)));
            }
            out.push_str(&format!("{},{p},{o}\n", csv_field(t)));
        }
    }
    out
}

/// A reset-plan file is read whole; a plan larger than this is not one a
/// person wrote or `--export` produced for a real group.
const RESET_PLAN_BYTES_MAX: u64 = 64 * 1024 * 1024;

async fn reset(admin: &Admin, args: &ConsumerGroupsArgs, groups: &[String]) -> anyhow::Result<()> {
    let specs = [
        args.to_earliest,
        args.to_latest,
        args.to_current,
        args.to_offset.is_some(),
        args.shift_by.is_some(),
        args.to_datetime.is_some(),
        args.by_duration.is_some(),
        args.from_file.is_some(),
    ];
    if specs.iter().filter(|s| **s).count() != 1 {
        return fail("Option [reset-offsets] takes exactly one of these options: [to-datetime], [by-duration], [to-earliest], [to-latest], [shift-by], [from-file], [to-current], [to-offset]");
    }
    if args.topics.is_empty() && !args.all_topics && args.from_file.is_none() {
        return fail("Option [reset-offsets] takes one of these options: [all-topics], [topic]");
    }
    let single_group = match groups {
        [one] if !args.all_groups => Some(one.as_str()),
        _ => None,
    };
    let plan = match &args.from_file {
        Some(path) => {
            let text = super::read_text_capped(path, RESET_PLAN_BYTES_MAX, "a reset plan")?;
            Some(parse_reset_plan(&text, single_group)?)
        }
        None => None,
    };
    if args.dry_run && args.execute {
        return fail("Option [reset-offsets] only accepts one of [execute] and [dry-run]");
    }
    if !args.dry_run && !args.execute {
        eprintln!("WARN: No action will be performed as the --execute option is missing. In a future major release, the default behavior of this command will be to prompt the user before executing the reset rather than doing a dry run. You should add the --dry-run option explicitly if you are scripting this command and want to keep the current default behavior without prompting.");
    }
    let mut results: Vec<(String, BTreeMap<TopicPartition, i64>)> = Vec::new();
    for group in groups {
        let d = admin.describe_any_group(group).await?;
        if !matches!(d.state.as_str(), "Empty" | "Dead") {
            return fail(format!(
                "Error: Assignments can only be reset if the group '{group}' is inactive, but the current state is {}.",
                d.state
            ));
        }
        let committed = admin.group_offsets(group).await?;
        let new = match &plan {
            Some(plan) => match plan.get(group) {
                Some(requested) => {
                    let tps: Vec<TopicPartition> = requested.keys().cloned().collect();
                    clamped(admin, &tps, requested).await?
                }
                None => {
                    eprintln!("\nError: No reset plan for group {group} found");
                    BTreeMap::new()
                }
            },
            None => {
                let tps = reset_partitions(admin, args, &committed).await?;
                target_offsets(admin, args, &tps, &committed).await?
            }
        };
        if args.execute && !new.is_empty() {
            admin.alter_group_offsets(group, &new).await?;
        }
        results.push((group.clone(), new));
    }
    if args.export {
        println!("{}", export_csv(&results, single_group.is_none()));
        return Ok(());
    }
    let gw = width(30, results.iter().map(|(g, _)| g.len()));
    let tw = width(
        30,
        results
            .iter()
            .flat_map(|(_, n)| n.keys().map(|tp| tp.0.len())),
    );
    println!(
        "\n{} {} {} {}",
        pad("GROUP", gw),
        pad("TOPIC", tw),
        pad("PARTITION", 10),
        pad("NEW-OFFSET", 15)
    );
    for (group, new) in &results {
        for ((t, p), o) in new {
            println!(
                "{} {} {} {}",
                pad(group, gw),
                pad(t, tw),
                pad(&p.to_string(), 10),
                pad(&o.to_string(), 15)
            );
        }
    }
    Ok(())
}

/// Each partition's log range (log start, log end), as ListOffsets gives
/// them; resets are moved into it, as Kafka's tool does.
struct LogRanges {
    earliest: BTreeMap<TopicPartition, i64>,
    latest: BTreeMap<TopicPartition, i64>,
}

impl LogRanges {
    async fn of(admin: &Admin, tps: &[TopicPartition]) -> anyhow::Result<LogRanges> {
        let list = |spec: OffsetSpec| -> Vec<(TopicPartition, OffsetSpec)> {
            tps.iter().map(|tp| (tp.clone(), spec)).collect()
        };
        Ok(LogRanges {
            earliest: admin.list_offsets(&list(OffsetSpec::Earliest)).await?,
            latest: admin.list_offsets(&list(OffsetSpec::Latest)).await?,
        })
    }

    /// `offset` moved into the partition's range; `None` for a partition
    /// with no log.
    fn clamp(&self, tp: &TopicPartition, offset: i64) -> Option<i64> {
        let lo = *self.earliest.get(tp)?;
        let hi = (*self.latest.get(tp)?).max(lo);
        Some(offset.clamp(lo, hi))
    }
}

/// Requested offsets moved into each partition's log range, as Kafka's tool
/// does for --from-file; a partition with no log is refused.
async fn clamped(
    admin: &Admin,
    tps: &[TopicPartition],
    requested: &BTreeMap<TopicPartition, i64>,
) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    let ranges = LogRanges::of(admin, tps).await?;
    let mut out = BTreeMap::new();
    for (tp, o) in requested {
        let Some(offset) = ranges.clamp(tp, *o) else {
            return fail(format!(
                "Error: partition {}-{} has no log to reset into (no such topic or partition)",
                tp.0, tp.1
            ));
        };
        out.insert(tp.clone(), offset);
    }
    Ok(out)
}

async fn reset_partitions(
    admin: &Admin,
    args: &ConsumerGroupsArgs,
    committed: &BTreeMap<TopicPartition, i64>,
) -> anyhow::Result<Vec<TopicPartition>> {
    if args.all_topics {
        return Ok(committed.keys().cloned().collect());
    }
    let mut out = Vec::new();
    for spec in &args.topics {
        match parse_topic_spec(spec)? {
            (t, Some(ps)) => out.extend(ps.into_iter().map(|p| (t.clone(), p))),
            (_, None) => {
                let info = admin.client().topic(spec, false).await;
                match info {
                    Ok(info) => {
                        out.extend(info.partitions.iter().map(|p| (spec.clone(), p.partition)))
                    }
                    Err(_) => return fail(format!("Error: The topic '{spec}' does not exist.")),
                }
            }
        }
    }
    Ok(out)
}

async fn target_offsets(
    admin: &Admin,
    args: &ConsumerGroupsArgs,
    tps: &[TopicPartition],
    committed: &BTreeMap<TopicPartition, i64>,
) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    let list = |spec: OffsetSpec| -> Vec<(TopicPartition, OffsetSpec)> {
        tps.iter().map(|tp| (tp.clone(), spec)).collect()
    };
    let ranges = LogRanges::of(admin, tps).await?;
    let (earliest, latest) = (&ranges.earliest, &ranges.latest);
    // A partition ListOffsets did not answer keeps the offset asked for.
    let clamp = |tp: &TopicPartition, o: i64| -> i64 { ranges.clamp(tp, o).unwrap_or(o) };
    let current = |tp: &TopicPartition| -> i64 {
        committed
            .get(tp)
            .copied()
            .unwrap_or_else(|| latest.get(tp).copied().unwrap_or(0))
    };
    let by_time = match (&args.to_datetime, &args.by_duration) {
        (Some(dt), _) => Some(parse_datetime(dt).or_else(fail)?),
        (_, Some(d)) => Some(super::now_ms() - parse_duration(d).or_else(fail)?),
        _ => None,
    };
    let timed = match by_time {
        Some(ts) => admin.list_offsets(&list(OffsetSpec::Timestamp(ts))).await?,
        None => BTreeMap::new(),
    };
    Ok(tps
        .iter()
        .map(|tp| {
            let o = if args.to_earliest {
                earliest.get(tp).copied().unwrap_or(0)
            } else if args.to_latest {
                latest.get(tp).copied().unwrap_or(0)
            } else if args.to_current {
                current(tp)
            } else if let Some(o) = args.to_offset {
                clamp(tp, o)
            } else if let Some(n) = args.shift_by {
                clamp(tp, current(tp) + n)
            } else {
                // No record at or after the time: the log end, as Kafka does.
                match timed.get(tp).copied() {
                    Some(o) if o >= 0 => o,
                    _ => latest.get(tp).copied().unwrap_or(0),
                }
            };
            (tp.clone(), o)
        })
        .collect())
}

/// `YYYY-MM-DDTHH:mm:SS[.sss][Z|±HH:mm]` to epoch ms (UTC when no zone).
pub fn parse_datetime(text: &str) -> Result<i64, String> {
    let bad =
        || format!("Error: the datetime '{text}' is not in the format 'YYYY-MM-DDTHH:mm:SS.sss'");
    // Only ASCII can be a date: byte slicing below is then on characters.
    if !text.is_ascii() {
        return Err(bad());
    }
    let (main, offset_min) = if let Some(s) = text.strip_suffix('Z') {
        (s, 0)
    } else if text.len() > 6
        && matches!(&text[text.len() - 6..text.len() - 5], "+" | "-")
        && text[text.len() - 3..].starts_with(':')
    {
        let zone = &text[text.len() - 6..];
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let h: i64 = zone[1..3].parse().map_err(|_| bad())?;
        let m: i64 = zone[4..6].parse().map_err(|_| bad())?;
        (&text[..text.len() - 6], sign * (h * 60 + m))
    } else {
        (text, 0)
    };
    let (date, time) = main.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let (hms, millis) = match time.split_once('.') {
        Some((hms, ms)) => (
            hms,
            format!("{ms:0<3}")[..3].parse::<i64>().map_err(|_| bad())?,
        ),
        None => (time, 0),
    };
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    // Four-digit years and clock fields in range: nothing below overflows.
    let in_range = d.len() == 3
        && t.len() == 3
        && (0..=9_999).contains(&d[0])
        && (1..=12).contains(&d[1])
        && (1..=31).contains(&d[2])
        && (0..=23).contains(&t[0])
        && (0..=59).contains(&t[1])
        && (0..=60).contains(&t[2]);
    if !in_range {
        return Err(bad());
    }
    let days = vltava_client::calendar::days_from_civil(d[0], d[1], d[2]);
    Ok(((days * 24 + t[0]) * 60 + t[1] - offset_min) * 60_000 + t[2] * 1000 + millis)
}

/// ISO-8601 `PnDTnHnMnS` to ms.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("Error: the duration '{text}' is not in the format 'PnDTnHnMnS'");
    let rest = text.strip_prefix('P').ok_or_else(bad)?;
    let mut ms = 0i64;
    let mut number = String::new();
    let mut in_time = false;
    for c in rest.chars() {
        match c {
            'T' => in_time = true,
            '0'..='9' | '.' => number.push(c),
            unit => {
                let n: f64 = number.parse().map_err(|_| bad())?;
                number.clear();
                let factor = match (unit, in_time) {
                    ('D', false) => 86_400_000.0,
                    ('H', true) => 3_600_000.0,
                    ('M', true) => 60_000.0,
                    ('S', true) => 1000.0,
                    _ => return Err(bad()),
                };
                // `as` saturates; the sum must too.
                ms = ms.saturating_add((n * factor) as i64);
            }
        }
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_and_durations() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000").unwrap(), 0);
        assert_eq!(
            parse_datetime("2024-03-01T12:30:15.250Z").unwrap(),
            1_709_296_215_250
        );
        assert_eq!(
            parse_datetime("2024-03-01T13:30:15.250+01:00").unwrap(),
            1_709_296_215_250
        );
        for bad in [
            "2024-03-01T12:30:15.éé",
            "ééééééé",
            "99999999999999-01-01T00:00:00",
            "2024-13-01T00:00:00",
            "2024-01-01T24:00:00",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("P1DT2H3M4S").unwrap(), 93_784_000);
        let huge = format!("P{0}DT{0}H", "9".repeat(30));
        assert_eq!(parse_duration(&huge), Ok(i64::MAX));
        assert!(parse_duration("1D").is_err());
    }
}
