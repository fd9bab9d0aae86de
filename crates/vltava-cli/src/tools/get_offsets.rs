//! `vltava get-offsets`: `kafka-get-offsets.sh` (GetOffsetShell) with the
//! same flags and output: one `topic:partition:offset` line per partition,
//! sorted, partitions with no offset at the asked time left out.

use clap::Args;
use regex::Regex;
use vltava_client::consumer::OffsetSpec;
use vltava_client::Admin;

use super::{fail, BOOTSTRAP_DEFAULT, BOOTSTRAP_ENV};

/// Print the offsets of topic partitions at a time (kafka-get-offsets.sh).
#[derive(Args, Debug)]
pub struct GetOffsetsArgs {
    /// The server(s) to connect to; default $VLTAVA_BOOTSTRAP, else
    /// 127.0.0.1:9092 (the zero-config broker).
    #[arg(long, env = BOOTSTRAP_ENV, default_value = BOOTSTRAP_DEFAULT, value_name = "String: HOST1:PORT1,...,HOST3:PORT3")]
    pub bootstrap_server: String,
    /// The topic to get the offsets for; a regular expression (matched
    /// whole) selects several. All topics when absent.
    #[arg(long, value_name = "String: topic")]
    pub topic: Option<String>,
    /// Comma-separated partition ids; all partitions when absent.
    #[arg(long, value_name = "String: partition ids")]
    pub partitions: Option<String>,
    /// Comma-separated rules `topic-regex:partitions`, where partitions is
    /// a number, `N-M` (M exclusive), `N-`, `-M` or nothing (all); a
    /// partition matching any rule is listed. Not with --topic/--partitions.
    #[arg(
        long,
        value_name = "String: topic1:1,topic2:0-3,topic3,topic4:5-,topic5:-3"
    )]
    pub topic_partitions: Option<String>,
    /// -1 or latest, -2 or earliest, -3 or max-timestamp, or a timestamp in
    /// milliseconds (the first offset at or after it).
    #[arg(
        long,
        value_name = "<String: timestamp>",
        default_value = "latest",
        allow_hyphen_values = true
    )]
    pub time: String,
    /// Leave out internal topics (__consumer_offsets).
    #[arg(long)]
    pub exclude_internal_topics: bool,
    /// Client settings for the admin connection (client.id); security
    /// settings and anything else are refused, never ignored.
    #[arg(long, value_name = "String: config file")]
    pub command_config: Option<String>,
}

fn offset_spec(time: &str) -> anyhow::Result<OffsetSpec> {
    Ok(match time.trim() {
        "-1" | "latest" => OffsetSpec::Latest,
        "-2" | "earliest" => OffsetSpec::Earliest,
        "-3" | "max-timestamp" => OffsetSpec::MaxTimestamp,
        other => match other.parse::<i64>() {
            Ok(ms) if ms >= 0 => OffsetSpec::Timestamp(ms),
            _ => {
                return fail(format!(
                    "Malformed time argument {other}. Please use -1 or latest / -2 or earliest / -3 or max-timestamp, or a specified long format timestamp"
                ))
            }
        },
    })
}

fn partition_list(text: &str) -> anyhow::Result<Vec<i32>> {
    text.split(',')
        .map(|p| {
            p.trim()
                .parse::<i32>()
                .or_else(|_| fail(format!("Invalid partition '{p}' in --partitions")))
        })
        .collect()
}

/// One `--topic-partitions` rule: a topic regex and a partition range
/// (`lo..hi`, `hi` exclusive).
#[derive(Debug)]
pub struct Rule {
    topic: Regex,
    partitions: std::ops::Range<i64>,
}

impl Rule {
    fn allows(&self, topic: &str, partition: i32) -> bool {
        self.topic.is_match(topic) && self.partitions.contains(&i64::from(partition))
    }
}

/// The rules of `--topic-partitions` (Kafka's GetOffsetShell grammar), or
/// of `--topic`/`--partitions` as one rule per listed partition.
pub fn rules(
    topic_partitions: Option<&str>,
    topic: Option<&str>,
    partitions: Option<&str>,
) -> anyhow::Result<Vec<Rule>> {
    let regex = |t: &str| super::include_list(t, "--topic");
    let Some(list) = topic_partitions else {
        let topic = regex(topic.unwrap_or(".*"))?;
        return Ok(match partitions.map(partition_list).transpose()? {
            None => vec![Rule {
                topic,
                partitions: 0..i64::MAX,
            }],
            Some(ids) => ids
                .into_iter()
                .map(|p| Rule {
                    topic: topic.clone(),
                    partitions: i64::from(p)..i64::from(p) + 1,
                })
                .collect(),
        });
    };
    if topic.is_some() || partitions.is_some() {
        return fail("--topic-partitions cannot be used with --topic or --partitions");
    }
    let grammar = Regex::new(r"^([^:,]*)(?::(?:([0-9]*)|(?:([0-9]*)-([0-9]*))))?$")
        .expect("the rule grammar is a valid regex");
    list.split(',')
        .map(|spec| {
            let Some(caps) = grammar.captures(spec) else {
                return fail(format!("Invalid rule specification: {spec}"));
            };
            let group = |i: usize| caps.get(i).map(|m| m.as_str()).filter(|s| !s.is_empty());
            // Partition numbers are INT32, as in Kafka's tool.
            let number = |text: &str| {
                text.parse::<i32>()
                    .map(i64::from)
                    .or_else(|_| fail(format!("Invalid rule specification: {spec}")))
            };
            let partitions = match (group(2), group(3), group(4)) {
                (Some(p), _, _) => number(p)?..number(p)? + 1,
                (None, lo, hi) => {
                    let lo = lo.map(number).transpose()?.unwrap_or(0);
                    let hi = hi.map(number).transpose()?.unwrap_or(i64::from(i32::MAX));
                    lo..hi
                }
            };
            Ok(Rule {
                topic: regex(group(1).unwrap_or(".*"))?,
                partitions,
            })
        })
        .collect()
}

pub async fn run(args: GetOffsetsArgs) -> anyhow::Result<()> {
    let spec = offset_spec(&args.time)?;
    let rules = rules(
        args.topic_partitions.as_deref(),
        args.topic.as_deref(),
        args.partitions.as_deref(),
    )?;
    let command = super::read_command_config(args.command_config.as_deref())?;
    let client = super::connect_with(&args.bootstrap_server, &command, "GetOffsetShell").await?;
    let admin = Admin::new(client);
    let mut wanted = Vec::new();
    for topic in admin.list_topics().await? {
        if topic.is_internal && args.exclude_internal_topics {
            continue;
        }
        for p in 0..topic.partitions.len() as i32 {
            if rules.iter().any(|r| r.allows(&topic.name, p)) {
                wanted.push(((topic.name.clone(), p), spec));
            }
        }
    }
    if wanted.is_empty() {
        return fail("Could not match any topic-partitions with the specified filters");
    }
    let offsets = admin.list_offsets(&wanted).await?;
    for ((topic, partition), offset) in offsets {
        // As Kafka's tool: a partition with no offset at that time is left out.
        if offset >= 0 {
            println!("{topic}:{partition}:{offset}");
        }
    }
    Ok(())
}
