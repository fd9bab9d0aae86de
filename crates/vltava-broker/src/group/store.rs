//! Group state as records in the internal `__consumer_offsets` topic.
//!
//! Keys follow Kafka's layout (a big-endian `i16` version, then
//! length-prefixed strings), so the topic compacts the same way: version 1
//! is a committed offset (group, topic, partition), version 2 a classic
//! group's metadata (group), version 3 a consumer (KIP-848) group (group).
//! Values are JSON documents of our own; a missing value is a tombstone.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

const KEY_OFFSET: i16 = 1;
const KEY_CLASSIC_GROUP: i16 = 2;
const KEY_CONSUMER_GROUP: i16 = 3;

/// The partition of `__consumer_offsets` that owns `group`: Kafka's
/// `abs(groupId.hashCode()) % partitions`, with Java's string hash.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let hash = group.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions.max(1)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    ClassicGroup {
        group: String,
    },
    ConsumerGroup {
        group: String,
    },
}

impl RecordKey {
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. }
            | RecordKey::ClassicGroup { group }
            | RecordKey::ConsumerGroup { group } => group,
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                buf.put_i16(KEY_OFFSET);
                put_string(&mut buf, group);
                put_string(&mut buf, topic);
                buf.put_i32(*partition);
            }
            RecordKey::ClassicGroup { group } => {
                buf.put_i16(KEY_CLASSIC_GROUP);
                put_string(&mut buf, group);
            }
            RecordKey::ConsumerGroup { group } => {
                buf.put_i16(KEY_CONSUMER_GROUP);
                put_string(&mut buf, group);
            }
        }
        buf.freeze()
    }

    pub fn decode(mut buf: &[u8]) -> Option<RecordKey> {
        if buf.remaining() < 2 {
            return None;
        }
        match buf.get_i16() {
            KEY_OFFSET => {
                let group = get_string(&mut buf)?;
                let topic = get_string(&mut buf)?;
                (buf.remaining() >= 4).then(|| RecordKey::Offset {
                    group,
                    topic,
                    partition: buf.get_i32(),
                })
            }
            KEY_CLASSIC_GROUP => Some(RecordKey::ClassicGroup {
                group: get_string(&mut buf)?,
            }),
            KEY_CONSUMER_GROUP => Some(RecordKey::ConsumerGroup {
                group: get_string(&mut buf)?,
            }),
            _ => None,
        }
    }
}

/// Writes an `i16`-length string. Callers bound what they store (group ids
/// by `GROUP_ID_BYTES_MAX`, topic names by Kafka's 249), so a longer one is
/// a bug: cutting it would merge two groups after a restart.
fn put_string(buf: &mut BytesMut, s: &str) {
    let len = i16::try_from(s.len())
        .unwrap_or_else(|_| panic!("a {}-byte string in a group record key", s.len()));
    buf.put_i16(len);
    buf.put_slice(s.as_bytes());
}

fn get_string(buf: &mut &[u8]) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = usize::try_from(buf.get_i16()).ok()?;
    if buf.remaining() < len {
        return None;
    }
    let s = String::from_utf8(buf[..len].to_vec()).ok()?;
    buf.advance(len);
    Some(s)
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}

/// A classic group's membership as of its last completed rebalance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassicGroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<ClassicMemberValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassicMemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// (protocol name, metadata) as the member joined with them.
    pub protocols: Vec<(String, Vec<u8>)>,
    pub assignment: Vec<u8>,
}

/// A consumer (KIP-848) group: its epoch and members' subscriptions and
/// assignments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerGroupValue {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: Vec<ConsumerMemberValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// topic name → partitions, as last acknowledged.
    pub assigned: Vec<(String, Vec<i32>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_javas_string_hash() {
        // "my-group".hashCode() == -1906497762 in Java; abs % 50 == 12.
        assert_eq!(partition_for("my-group", 50), 12);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE, which
        // Kafka's Utils.abs maps to 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("", 50), 0);
    }

    #[test]
    fn keys_round_trip() {
        for key in [
            RecordKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
            },
            RecordKey::ClassicGroup { group: "g".into() },
            RecordKey::ConsumerGroup { group: "ü".into() },
        ] {
            assert_eq!(RecordKey::decode(&key.encode()), Some(key));
        }
        assert_eq!(RecordKey::decode(&[0, 1, 0]), None);
        assert_eq!(RecordKey::decode(&[0, 9]), None);
    }
}
