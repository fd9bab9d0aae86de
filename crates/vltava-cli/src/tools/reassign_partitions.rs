//! `vltava reassign-partitions`: `kafka-reassign-partitions.sh` with its
//! flags, JSON files and output. Proposes a placement of whole topics on a
//! list of brokers (`--generate`), starts the reassignments a file asks
//! for (`--execute`), reports how far they got (`--verify`), lists the
//! ones under way (`--list`) and cancels them (`--cancel`).
//!
//! Not built: replication throttles (`--throttle`,
//! `--replica-alter-log-dirs-throttle`, `--preserve-throttles`; brokers do
//! not throttle replication), log directory moves (a broker has one data
//! directory, so `log_dirs` may only say "any"), and rack-aware
//! generation: `--generate` always places replicas as Kafka does without
//! racks.

use std::collections::{BTreeMap, BTreeSet};

use clap::Args;
use serde::Serialize;
use serde_json::Value;
use vltava_client::consumer::TopicPartition;
use vltava_client::Admin;

use super::{connect_with, fail, read_command_config, read_text_capped};
use super::{BOOTSTRAP_DEFAULT, BOOTSTRAP_ENV};

/// A reassignment or topics file is read whole; one larger than this is
/// not something a person wrote for one request.
const JSON_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Move topic partitions between brokers (kafka-reassign-partitions.sh).
#[derive(Args, Debug)]
pub struct ReassignPartitionsArgs {
    /// The server(s) to connect to; default $VLTAVA_BOOTSTRAP, else
    /// 127.0.0.1:9092 (the zero-config broker).
    #[arg(long, env = BOOTSTRAP_ENV, default_value = BOOTSTRAP_DEFAULT, value_name = "host:port")]
    pub bootstrap_server: String,
    /// Propose a placement of the topics in --topics-to-move-json-file on
    /// the brokers of --broker-list (printed, not applied).
    #[arg(long)]
    pub generate: bool,
    /// Start the reassignments in --reassignment-json-file.
    #[arg(long)]
    pub execute: bool,
    /// Report whether the reassignments in --reassignment-json-file are done.
    #[arg(long)]
    pub verify: bool,
    /// Cancel the reassignments in --reassignment-json-file that are under way.
    #[arg(long)]
    pub cancel: bool,
    /// List the reassignments under way.
    #[arg(long)]
    pub list: bool,
    /// The reassignment JSON: {"version":1,"partitions":[{"topic":"foo","partition":0,"replicas":[1,2]}]}.
    #[arg(long, value_name = "manual assignment json file path")]
    pub reassignment_json_file: Option<String>,
    /// The topics to place with --generate: {"version":1,"topics":[{"topic":"foo"}]}.
    #[arg(long, value_name = "topics to reassign json file path")]
    pub topics_to_move_json_file: Option<String>,
    /// The brokers to place the topics on with --generate, as "1,2,3".
    #[arg(long, value_name = "brokerlist")]
    pub broker_list: Option<String>,
    /// With --execute: start these reassignments even while others are
    /// under way.
    #[arg(long)]
    pub additional: bool,
    /// Client settings for the admin connection (client.id); security
    /// settings and anything else are refused, never ignored.
    #[arg(
        long,
        value_name = "Admin client property file",
        alias = "admin.config"
    )]
    pub command_config: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Generate,
    Execute,
    Verify,
    Cancel,
    List,
}

impl Action {
    fn flag(self) -> &'static str {
        match self {
            Action::Generate => "generate",
            Action::Execute => "execute",
            Action::Verify => "verify",
            Action::Cancel => "cancel",
            Action::List => "list",
        }
    }
}

/// One partition's line in a reassignment file, in Kafka's field order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub log_dirs: Vec<String>,
}

impl Placement {
    fn new(topic: &str, partition: i32, replicas: Vec<i32>) -> Placement {
        Placement {
            topic: topic.to_string(),
            partition,
            log_dirs: vec!["any".to_string(); replicas.len()],
            replicas,
        }
    }

    fn name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

#[derive(Serialize)]
struct PlacementFile<'a> {
    version: i32,
    partitions: &'a [Placement],
}

/// A reassignment file's JSON, as Kafka's tool prints it (partitions in
/// topic, then partition order).
pub fn placement_json(placements: &[Placement]) -> String {
    let mut sorted = placements.to_vec();
    sorted.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    serde_json::to_string(&PlacementFile {
        version: 1,
        partitions: &sorted,
    })
    .expect("a placement list serialises")
}

pub async fn run(args: ReassignPartitionsArgs) -> anyhow::Result<()> {
    let actions: Vec<Action> = [
        (args.generate, Action::Generate),
        (args.execute, Action::Execute),
        (args.verify, Action::Verify),
        (args.cancel, Action::Cancel),
        (args.list, Action::List),
    ]
    .into_iter()
    .filter_map(|(on, action)| on.then_some(action))
    .collect();
    let [action] = actions[..] else {
        return fail(
            "Command must include exactly one action: --generate, --execute, --verify, --cancel, --list",
        );
    };
    check_options(&args, action)?;
    let command = read_command_config(args.command_config.as_deref())?;
    let admin = Admin::new(
        connect_with(
            &args.bootstrap_server,
            &command,
            "vltava-reassign-partitions",
        )
        .await?,
    );
    match action {
        Action::Generate => generate(&admin, &args).await,
        Action::Execute => execute(&admin, &args).await,
        Action::Verify => verify(&admin, &args).await,
        Action::Cancel => cancel(&admin, &args).await,
        Action::List => list(&admin).await,
    }
}

/// Kafka's rules for which options each action needs and takes.
fn check_options(args: &ReassignPartitionsArgs, action: Action) -> anyhow::Result<()> {
    let given = [
        (
            "reassignment-json-file",
            args.reassignment_json_file.is_some(),
        ),
        (
            "topics-to-move-json-file",
            args.topics_to_move_json_file.is_some(),
        ),
        ("broker-list", args.broker_list.is_some()),
        ("additional", args.additional),
    ];
    let (required, permitted): (&[&str], &[&str]) = match action {
        Action::Generate => (
            &["topics-to-move-json-file", "broker-list"],
            &["topics-to-move-json-file", "broker-list"],
        ),
        Action::Execute => (
            &["reassignment-json-file"],
            &["reassignment-json-file", "additional"],
        ),
        Action::Verify | Action::Cancel => {
            (&["reassignment-json-file"], &["reassignment-json-file"])
        }
        Action::List => (&[], &[]),
    };
    for (option, on) in given {
        if on && !permitted.contains(&option) {
            return fail(format!(
                "Option \"[{option}]\" can't be used with action \"[{}]\"",
                action.flag()
            ));
        }
    }
    for option in required {
        if !given.iter().any(|(o, on)| o == option && *on) {
            return fail(format!("Missing required argument \"[{option}]\""));
        }
    }
    Ok(())
}

/// Reads a JSON file's `version` (optional; only 1 is known).
fn check_version(json: &Value) -> anyhow::Result<()> {
    match json.get("version") {
        None => Ok(()),
        Some(v) if v.as_i64() == Some(1) => Ok(()),
        Some(v) => fail(format!("Not supported version field value {v}")),
    }
}

fn parse_json(text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).or_else(|_| fail("The input string is not a valid JSON"))
}

fn int_field(entry: &Value, field: &str) -> anyhow::Result<i32> {
    let Some(value) = entry.get(field) else {
        return fail(format!("No such field exists: `{field}`"));
    };
    value
        .as_i64()
        .and_then(|v| i32::try_from(v).ok())
        .map_or_else(
            || fail(format!("Expected `Integer` value, received {value}")),
            Ok,
        )
}

/// A reassignment file, checked as Kafka's tool checks it: a list that is
/// not empty, no partition twice, every replica list non-empty and without
/// repeats, and `log_dirs` (optional) the same length as the replicas and
/// "any" throughout (a broker has one data directory).
pub fn parse_reassignment(text: &str) -> anyhow::Result<Vec<Placement>> {
    let json = parse_json(text)?;
    check_version(&json)?;
    let entries = match json.get("partitions") {
        None => Vec::new(),
        Some(Value::Array(list)) => list.clone(),
        Some(other) => return fail(format!("Expected an array of partitions, received {other}")),
    };
    if entries.is_empty() {
        return fail("Partition reassignment list cannot be empty");
    }
    let mut out: Vec<Placement> = Vec::with_capacity(entries.len());
    for entry in &entries {
        let Some(topic) = entry.get("topic") else {
            return fail("No such field exists: `topic`");
        };
        let Some(topic) = topic.as_str() else {
            return fail(format!("Expected `String` value, received {topic}"));
        };
        let partition = int_field(entry, "partition")?;
        let Some(replicas) = entry.get("replicas") else {
            return fail("No such field exists: `replicas`");
        };
        let Some(list) = replicas.as_array() else {
            return fail(format!(
                "Expected an array of broker ids, received {replicas}"
            ));
        };
        let mut ids = Vec::with_capacity(list.len());
        for id in list {
            match id.as_i64().and_then(|v| i32::try_from(v).ok()) {
                Some(id) => ids.push(id),
                None => return fail(format!("Expected `Integer` value, received {id}")),
            }
        }
        let placement = Placement::new(topic, partition, ids);
        if let Some(dirs) = entry.get("log_dirs") {
            let dirs: Vec<&str> = dirs
                .as_array()
                .map(|d| d.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if dirs.len() != placement.replicas.len() {
                return fail(format!(
                    "Size of replicas list {:?} is different from size of log dirs list {dirs:?} for partition {}",
                    placement.replicas,
                    placement.name()
                ));
            }
            if let Some(dir) = dirs.iter().find(|d| **d != "any") {
                return fail(format!(
                    "Log directory {dir} for partition {}: a Vltava broker has one data directory, so log_dirs may only say \"any\"",
                    placement.name()
                ));
            }
        }
        out.push(placement);
    }
    let mut seen = BTreeSet::new();
    let mut duplicated: Vec<String> = out
        .iter()
        .filter(|p| !seen.insert((p.topic.clone(), p.partition)))
        .map(Placement::name)
        .collect();
    duplicated.dedup();
    if !duplicated.is_empty() {
        return fail(format!(
            "Partition reassignment contains duplicate topic partitions: {}",
            duplicated.join(",")
        ));
    }
    if out.iter().any(|p| p.replicas.is_empty()) {
        return fail("Partition replica list cannot be empty");
    }
    let repeated: Vec<String> = out
        .iter()
        .filter_map(|p| {
            let mut seen = BTreeSet::new();
            let again: BTreeSet<i32> = p
                .replicas
                .iter()
                .copied()
                .filter(|id| !seen.insert(*id))
                .collect();
            (!again.is_empty()).then(|| {
                format!(
                    "{} contains multiple entries for {}",
                    p.name(),
                    id_list(&again)
                )
            })
        })
        .collect();
    if !repeated.is_empty() {
        return fail(format!(
            "Partition replica lists may not contain duplicate entries: {}",
            repeated.join(". ")
        ));
    }
    Ok(out)
}

/// A topics-to-move file: `{"version":1,"topics":[{"topic":"foo"}]}`.
pub fn parse_topics(text: &str) -> anyhow::Result<Vec<String>> {
    let json = parse_json(text)?;
    check_version(&json)?;
    let entries = json
        .get("topics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut topics = Vec::with_capacity(entries.len());
    for entry in &entries {
        let Some(topic) = entry.get("topic").and_then(Value::as_str) else {
            return fail("No such field exists: `topic`");
        };
        topics.push(topic.to_string());
    }
    let mut seen = BTreeSet::new();
    let duplicated: Vec<&String> = topics.iter().filter(|t| !seen.insert(*t)).collect();
    if !duplicated.is_empty() {
        return fail(format!(
            "List of topics to reassign contains duplicate entries: {duplicated:?}"
        ));
    }
    Ok(topics)
}

fn parse_broker_list(text: &str) -> anyhow::Result<Vec<i32>> {
    let mut ids = Vec::new();
    for part in text.split(',') {
        match part.trim().parse::<i32>() {
            Ok(id) => ids.push(id),
            Err(_) => return fail(format!("Error: For input string: \"{}\"", part.trim())),
        }
    }
    let distinct: BTreeSet<i32> = ids.iter().copied().collect();
    if distinct.len() != ids.len() {
        return fail(format!("Broker list contains duplicate entries: {ids:?}"));
    }
    Ok(ids)
}

/// Kafka's rack-unaware placement of `partitions` partitions with
/// `factor` replicas on `brokers`: partition p's first replica is broker
/// (p + start) mod n, the others follow at a shift that grows every n
/// partitions. Kafka draws `start` and the shift at random; here they come
/// from the topic's name, so running --generate again proposes the same
/// placement (and different topics still start on different brokers).
pub fn place(topic: &str, brokers: &[i32], partitions: i32, factor: usize) -> Vec<Vec<i32>> {
    let n = brokers.len();
    if n == 0 {
        return Vec::new();
    }
    // FNV-1a: stable across runs and platforms.
    let hash = topic.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let start = (hash % n as u64) as usize;
    let mut shift = ((hash / n as u64) % n as u64) as usize;
    (0..partitions.max(0) as usize)
        .map(|p| {
            if p > 0 && p % n == 0 {
                shift += 1;
            }
            let first = (p + start) % n;
            let mut replicas = vec![brokers[first]];
            for j in 0..factor.saturating_sub(1) {
                let at = (first + 1 + (shift + j) % (n - 1)) % n;
                replicas.push(brokers[at]);
            }
            replicas
        })
        .collect()
}

/// The current placement of every partition of `topics`; a topic that does
/// not exist is an error, as in Kafka.
async fn current_placement(admin: &Admin, topics: &[String]) -> anyhow::Result<Vec<Placement>> {
    let described = admin.describe_topics(topics).await?;
    let mut out = Vec::new();
    for topic in &described {
        if topic.error_code != 0 {
            return fail(format!(
                "Error: org.apache.kafka.common.errors.UnknownTopicOrPartitionException: Topic {} not found.",
                topic.name
            ));
        }
        out.extend(
            topic
                .partitions
                .iter()
                .map(|p| Placement::new(&topic.name, p.partition, p.replicas.clone())),
        );
    }
    Ok(out)
}

async fn generate(admin: &Admin, args: &ReassignPartitionsArgs) -> anyhow::Result<()> {
    let path = args.topics_to_move_json_file.as_deref().unwrap_or_default();
    let topics = parse_topics(&read_text_capped(
        path,
        JSON_FILE_BYTES_MAX,
        "a topics JSON file",
    )?)?;
    let wanted = parse_broker_list(args.broker_list.as_deref().unwrap_or_default())?;
    // As Kafka: brokers the cluster does not know are dropped.
    let live = admin.live_broker_ids().await?;
    let brokers: Vec<i32> = live.into_iter().filter(|id| wanted.contains(id)).collect();
    let current = current_placement(admin, &topics).await?;
    let mut proposed = Vec::new();
    for topic in &topics {
        let partitions: Vec<&Placement> = current.iter().filter(|p| &p.topic == topic).collect();
        let factor = partitions.first().map_or(0, |p| p.replicas.len());
        if factor > brokers.len() {
            return fail(format!(
                "Error: Replication factor: {factor} larger than available brokers: {}.",
                brokers.len()
            ));
        }
        let placed = place(topic, &brokers, partitions.len() as i32, factor);
        proposed.extend(
            partitions
                .iter()
                .zip(placed)
                .map(|(p, replicas)| Placement::new(topic, p.partition, replicas)),
        );
    }
    println!(
        "Current partition replica assignment\n{}\n",
        placement_json(&current)
    );
    println!(
        "Proposed partition reassignment configuration\n{}",
        placement_json(&proposed)
    );
    Ok(())
}

fn plural<T>(list: &[T]) -> &'static str {
    if list.len() == 1 {
        ""
    } else {
        "s"
    }
}

/// Sends the reassignments (or cancellations) and returns the partitions
/// they were accepted for; if any was refused, fails with `heading` and a
/// `topic-partition: reason` line for each refusal, as Kafka's tool does.
async fn alter(
    admin: &Admin,
    asks: &[(TopicPartition, Option<Vec<i32>>)],
    heading: &str,
) -> anyhow::Result<Vec<TopicPartition>> {
    let results = admin.alter_partition_reassignments(asks).await?;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|((t, p), r)| r.as_ref().err().map(|e| format!("{t}-{p}: {}", e.text())))
        .collect();
    if !failed.is_empty() {
        return fail(format!("{heading}\n{}", failed.join("\n")));
    }
    Ok(results.into_keys().collect())
}

/// Broker ids as Kafka's tool prints them: `1,2,3`.
fn id_list<'a>(ids: impl IntoIterator<Item = &'a i32>) -> String {
    ids.into_iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The topics a reassignment file names, each once, in name order.
fn topics_of(wanted: &[Placement]) -> Vec<String> {
    let names: BTreeSet<&str> = wanted.iter().map(|p| p.topic.as_str()).collect();
    names.into_iter().map(str::to_string).collect()
}

/// The reassignments under way among the partitions a file names.
async fn ongoing_of(
    admin: &Admin,
    wanted: &[Placement],
) -> anyhow::Result<BTreeMap<TopicPartition, vltava_client::admin::Reassignment>> {
    let partitions: Vec<TopicPartition> = wanted
        .iter()
        .map(|p| (p.topic.clone(), p.partition))
        .collect();
    Ok(admin
        .list_partition_reassignments(Some(&partitions))
        .await?)
}

fn names(list: &[TopicPartition]) -> String {
    list.iter()
        .map(|(t, p)| format!("{t}-{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn read_reassignment(args: &ReassignPartitionsArgs) -> anyhow::Result<Vec<Placement>> {
    let path = args.reassignment_json_file.as_deref().unwrap_or_default();
    parse_reassignment(&read_text_capped(
        path,
        JSON_FILE_BYTES_MAX,
        "a reassignment JSON file",
    )?)
}

async fn execute(admin: &Admin, args: &ReassignPartitionsArgs) -> anyhow::Result<()> {
    let wanted = read_reassignment(args)?;
    if !args.additional && !admin.list_partition_reassignments(None).await?.is_empty() {
        return fail(
            "Cannot execute because there is an existing partition assignment.  Use --additional to override this and create a new partition assignment in addition to the existing one. The --additional flag can also be used to change the throttle by resubmitting the current reassignment.",
        );
    }
    let known: BTreeSet<i32> = admin
        .describe_cluster()
        .await?
        .brokers
        .iter()
        .map(|b| b.id)
        .collect();
    if let Some(unknown) = wanted
        .iter()
        .flat_map(|p| p.replicas.iter())
        .find(|id| !known.contains(id))
    {
        return fail(format!("Unknown broker id {unknown}"));
    }
    let topics = topics_of(&wanted);
    let current = current_placement(admin, &topics).await?;
    let mut before = Vec::with_capacity(wanted.len());
    for p in &wanted {
        match current
            .iter()
            .find(|c| c.topic == p.topic && c.partition == p.partition)
        {
            Some(c) => before.push(c.clone()),
            None => {
                return fail(format!(
                    "Error: org.apache.kafka.common.errors.UnknownTopicOrPartitionException: Unable to find partition: {}",
                    p.name()
                ))
            }
        }
    }
    println!(
        "Current partition replica assignment\n\n{}\n\nSave this to use as the --reassignment-json-file option during rollback",
        placement_json(&before)
    );
    let asks: Vec<(TopicPartition, Option<Vec<i32>>)> = wanted
        .iter()
        .map(|p| ((p.topic.clone(), p.partition), Some(p.replicas.clone())))
        .collect();
    let started = alter(admin, &asks, "Error reassigning partition(s):").await?;
    println!(
        "Successfully started partition reassignment{} for {}",
        plural(&started),
        names(&started)
    );
    Ok(())
}

async fn verify(admin: &Admin, args: &ReassignPartitionsArgs) -> anyhow::Result<()> {
    let wanted = read_reassignment(args)?;
    let ongoing = ongoing_of(admin, &wanted).await?;
    let topics = topics_of(&wanted);
    let described = admin.describe_topics(&topics).await?;
    let replicas_of = |p: &Placement| -> Vec<i32> {
        described
            .iter()
            .find(|t| t.name == p.topic && t.error_code == 0)
            .and_then(|t| t.partitions.iter().find(|q| q.partition == p.partition))
            .map(|q| q.replicas.clone())
            .unwrap_or_default()
    };
    let mut sorted = wanted.clone();
    sorted.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    println!("Status of partition reassignment:");
    for p in &sorted {
        let current = replicas_of(p);
        if ongoing.contains_key(&(p.topic.clone(), p.partition)) {
            println!(
                "Reassignment of partition {} is still in progress.",
                p.name()
            );
        } else if current == p.replicas {
            println!("Reassignment of partition {} is completed.", p.name());
        } else {
            println!(
                "There is no active reassignment of partition {}, but replica set is {} rather than {}.",
                p.name(),
                id_list(&current),
                id_list(&p.replicas)
            );
        }
    }
    Ok(())
}

async fn cancel(admin: &Admin, args: &ReassignPartitionsArgs) -> anyhow::Result<()> {
    let wanted = read_reassignment(args)?;
    let ongoing = ongoing_of(admin, &wanted).await?;
    if ongoing.is_empty() {
        println!("None of the specified partition reassignments are active.");
        return Ok(());
    }
    let asks: Vec<(TopicPartition, Option<Vec<i32>>)> =
        ongoing.keys().map(|tp| (tp.clone(), None)).collect();
    let heading = format!(
        "Error cancelling partition reassignment{} for:",
        if asks.len() == 1 { "" } else { "s" }
    );
    let cancelled = alter(admin, &asks, &heading).await?;
    println!(
        "Successfully cancelled partition reassignment{} for: {}",
        plural(&cancelled),
        names(&cancelled)
    );
    Ok(())
}

async fn list(admin: &Admin) -> anyhow::Result<()> {
    let ongoing = admin.list_partition_reassignments(None).await?;
    if ongoing.is_empty() {
        println!("No partition reassignments found.");
        return Ok(());
    }
    println!("Current partition reassignments:");
    for ((topic, partition), r) in &ongoing {
        let mut line = format!("{topic}-{partition}: replicas: {}.", id_list(&r.replicas));
        if !r.adding.is_empty() {
            line.push_str(&format!(" adding: {}.", id_list(&r.adding)));
        }
        if !r.removing.is_empty() {
            line.push_str(&format!(" removing: {}.", id_list(&r.removing)));
        }
        println!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassignment_files_are_read_and_checked_as_kafka_reads_them() {
        let ok = parse_reassignment(
            r#"{"version":1,"partitions":[{"topic":"a","partition":1,"replicas":[2,3],"log_dirs":["any","any"]},{"topic":"b","partition":0,"replicas":[1]}]}"#,
        )
        .unwrap();
        assert_eq!(
            ok,
            [
                Placement::new("a", 1, vec![2, 3]),
                Placement::new("b", 0, vec![1])
            ]
        );
        let refused = |text: &str| parse_reassignment(text).unwrap_err().to_string();
        assert_eq!(refused("nope"), "The input string is not a valid JSON");
        assert_eq!(
            refused(r#"{"version":1}"#),
            "Partition reassignment list cannot be empty"
        );
        assert_eq!(
            refused(r#"{"version":2,"partitions":[]}"#),
            "Not supported version field value 2"
        );
        assert_eq!(
            refused(r#"{"partitions":[{"topic":"a","partition":0}]}"#),
            "No such field exists: `replicas`"
        );
        assert_eq!(
            refused(
                r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1]},{"topic":"a","partition":0,"replicas":[2]}]}"#
            ),
            "Partition reassignment contains duplicate topic partitions: a-0"
        );
        assert_eq!(
            refused(r#"{"partitions":[{"topic":"a","partition":0,"replicas":[]}]}"#),
            "Partition replica list cannot be empty"
        );
        assert_eq!(
            refused(r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1,1]}]}"#),
            "Partition replica lists may not contain duplicate entries: a-0 contains multiple entries for 1"
        );
        assert!(refused(
            r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1],"log_dirs":["/x"]}]}"#
        )
        .contains("log_dirs may only say \"any\""));
    }

    #[test]
    fn json_is_printed_in_kafkas_shape_and_order() {
        let json = placement_json(&[
            Placement::new("b", 0, vec![1]),
            Placement::new("a", 2, vec![2, 3]),
        ]);
        assert_eq!(
            json,
            r#"{"version":1,"partitions":[{"topic":"a","partition":2,"replicas":[2,3],"log_dirs":["any","any"]},{"topic":"b","partition":0,"replicas":[1],"log_dirs":["any"]}]}"#
        );
    }

    /// Every partition gets `factor` distinct brokers from the list, first
    /// replicas spread evenly, and the same topic gets the same proposal.
    #[test]
    fn generated_placements_spread_distinct_replicas() {
        let placed = place("orders", &[1, 2, 3], 6, 2);
        assert_eq!(placed.len(), 6);
        for replicas in &placed {
            let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
            assert_eq!(distinct.len(), 2, "{placed:?}");
        }
        let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
        for replicas in &placed {
            *leaders.entry(replicas[0]).or_default() += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), [2, 2, 2]);
        assert_eq!(placed, place("orders", &[1, 2, 3], 6, 2));
        assert_eq!(place("solo", &[4], 2, 1), [[4], [4]]);
    }

    #[test]
    fn topic_files_and_broker_lists() {
        assert_eq!(
            parse_topics(r#"{"version":1,"topics":[{"topic":"a"},{"topic":"b"}]}"#).unwrap(),
            ["a", "b"]
        );
        assert!(parse_topics(r#"{"topics":[{"topic":"a"},{"topic":"a"}]}"#).is_err());
        assert_eq!(parse_broker_list("1, 2,3").unwrap(), [1, 2, 3]);
        assert!(parse_broker_list("1,1").is_err());
        assert!(parse_broker_list("1,x").is_err());
    }
}
