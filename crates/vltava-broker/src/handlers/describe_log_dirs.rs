//! DescribeLogDirs (key 35): this broker's data directory and the size of
//! every partition replica in it (`kafka-log-dirs.sh --describe`).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::str_bytes;
use crate::Broker;

/// First version with the directory's total and usable bytes.
const SPACE_VERSION: i16 = 4;

pub fn handle(
    broker: &Broker,
    version: i16,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    // None: every partition; else the ones asked for, by topic.
    let wanted: Option<BTreeMap<String, BTreeSet<i32>>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions.into_iter().collect()))
            .collect()
    });
    let mut topics = Vec::new();
    for topic in broker.topics() {
        let asked = match &wanted {
            Some(w) => match w.get(&topic.name) {
                Some(partitions) => Some(partitions),
                None => continue,
            },
            None => None,
        };
        let partitions: Vec<DescribeLogDirsPartition> = topic
            .partitions
            .iter()
            .filter(|p| p.is_hosted() && !p.is_offline())
            .filter(|p| asked.is_none_or(|a| a.contains(&p.index)))
            .map(|p| {
                // Kafka's lag: how far this replica's log end is behind the
                // high watermark it knows (0 on the leader).
                let lag = (p.high_watermark() - p.log_end_offset()).max(0);
                DescribeLogDirsPartition::default()
                    .with_partition_index(p.index)
                    .with_partition_size(p.log().size_bytes() as i64)
                    .with_offset_lag(lag)
                    .with_is_future_key(false)
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(str_bytes(topic.name.clone())))
                    .with_partitions(partitions),
            );
        }
    }
    let dir = broker.config.data_dir();
    let dir_name = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    let mut result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(dir_name.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(-1)
        .with_usable_bytes(-1);
    if version >= SPACE_VERSION {
        if let Ok(stat) = rustix::fs::statvfs(dir) {
            let block = stat.f_frsize as i64;
            result = result
                .with_total_bytes((stat.f_blocks as i64).saturating_mul(block))
                .with_usable_bytes((stat.f_bavail as i64).saturating_mul(block));
        }
    }
    DescribeLogDirsResponse::default().with_results(vec![result])
}
