//! The one table of what Vltava implements, API by API.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiKey;

/// Every API the broker implements and tests, with the version range whose
/// semantics it honours. ApiVersions responses are built from this table and
/// requests outside it are refused, so adding a row is a promise.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    // Produce 12+ carries KIP-890 transaction semantics that are not built yet.
    (ApiKey::Produce, 3, 11),
    // Fetch 17 adds KRaft replica directories; 16 is everything a consumer needs.
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 8),
    // Kafka 4 dropped versions 0-1 (KIP-896); 2+ carry the client's current
    // leader epoch (KIP-320), 3+ the replica id.
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
    // 1 adds KIP-860's allowReplicationFactorChange.
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    // Kafka 4 dropped version 0 (KIP-896); 4 adds the directory's space.
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::UnregisterBroker, 0, 0),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    // Kafka 4 dropped OffsetCommit 0-1 and OffsetFetch 0 (KIP-896); 10+ name
    // topics by id.
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    // DescribeGroups 6 only adds an error message for unknown groups.
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    // The metadata quorum; v2 adds voters' directory ids and endpoints.
    (ApiKey::DescribeQuorum, 0, 2),
];

/// The supported `(min, max)` versions of `api_key`, if it is implemented.
pub fn supported_range(api_key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(key, _, _)| *key == api_key)
        .map(|&(_, min, max)| (min, max))
}

/// The ApiVersions response entries, straight from [`SUPPORTED_APIS`].
pub fn api_versions_entries() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_stays_within_what_the_message_types_can_encode() {
        for &(key, min, max) in SUPPORTED_APIS {
            let known = key.valid_versions();
            assert!(min <= max, "{key:?}");
            assert!(min >= known.min && max <= known.max, "{key:?} {min}-{max}");
        }
    }

    #[test]
    fn every_api_appears_once() {
        for (i, (a, _, _)) in SUPPORTED_APIS.iter().enumerate() {
            for (b, _, _) in &SUPPORTED_APIS[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
