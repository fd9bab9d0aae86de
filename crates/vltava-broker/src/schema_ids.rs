//! Server-side schema validation's view of the schema registry: which
//! schema ids each subject holds, and the rule a topic's
//! `confluent.key.schema.validation` / `confluent.value.schema.validation`
//! make of it (what Confluent Server and Redpanda offer).
//!
//! With validation on, every key or value produced to the topic must
//! start with Confluent's wire-format prefix (magic byte 0, a 4-byte
//! schema id) naming a schema registered under the subject the topic's
//! subject name strategy gives: `TOPIC-key`/`TOPIC-value` for
//! `TopicNameStrategy` (the default), any subject for
//! `RecordNameStrategy`, a subject `TOPIC-...` for
//! `TopicRecordNameStrategy`. Soft-deleted versions do not count. Records
//! that fail are refused with INVALID_RECORD and a message each.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use vltava_record::SchemaIdRule;

/// Schema ids by subject, live versions only.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SchemaIds {
    by_subject: BTreeMap<String, BTreeSet<i32>>,
}

impl SchemaIds {
    pub fn new(by_subject: BTreeMap<String, BTreeSet<i32>>) -> SchemaIds {
        SchemaIds { by_subject }
    }

    fn under(&self, subject: &str, id: i32) -> bool {
        self.by_subject
            .get(subject)
            .is_some_and(|ids| ids.contains(&id))
    }

    fn under_prefix(&self, prefix: &str, id: i32) -> bool {
        self.by_subject
            .range(prefix.to_string()..)
            .take_while(|(s, _)| s.starts_with(prefix))
            .any(|(_, ids)| ids.contains(&id))
    }
}

/// Where a broker reads the registry's current ids: the node's schema
/// registry, brought up to date with `_schemas` on each call.
pub trait SchemaIdSource: Send + Sync {
    #[allow(clippy::type_complexity)]
    fn current(&self) -> Pin<Box<dyn Future<Output = Result<Arc<SchemaIds>, String>> + Send + '_>>;
}

/// Confluent's subject name strategies, by the class names its topic
/// configs take.
pub const SUBJECT_NAME_STRATEGIES: [&str; 3] = [
    "io.confluent.kafka.serializers.subject.TopicNameStrategy",
    "io.confluent.kafka.serializers.subject.RecordNameStrategy",
    "io.confluent.kafka.serializers.subject.TopicRecordNameStrategy",
];

/// The schema registry's own topic: never validated (the registry writes
/// JSON records to it while it holds the store that validation reads).
pub const REGISTRY_TOPIC: &str = "_schemas";

/// A topic's validation settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validation {
    pub key: bool,
    pub value: bool,
    pub key_strategy: String,
    pub value_strategy: String,
}

impl Validation {
    pub fn any(&self) -> bool {
        self.key || self.value
    }

    /// Why `id` is not acceptable for `topic`'s key (or value), if it is not.
    pub fn refusal(&self, ids: &SchemaIds, topic: &str, is_key: bool, id: i32) -> Option<String> {
        let (strategy, suffix) = if is_key {
            (&self.key_strategy, "key")
        } else {
            (&self.value_strategy, "value")
        };
        let (found, under) = match strategy.rsplit('.').next() {
            Some("RecordNameStrategy") => (
                ids.by_subject.values().any(|s| s.contains(&id)),
                "any subject".to_string(),
            ),
            Some("TopicRecordNameStrategy") => (
                ids.under_prefix(&format!("{topic}-"), id),
                format!("a subject {topic}-<record name>"),
            ),
            _ => {
                let subject = format!("{topic}-{suffix}");
                (ids.under(&subject, id), format!("subject {subject}"))
            }
        };
        (!found).then(|| {
            format!("the {suffix}'s schema id {id} is not registered under {under} (confluent.{suffix}.schema.validation is on for {topic})")
        })
    }
}

/// What `topic` validates: its configs', nothing for the registry's topic.
pub fn validation_of(topic: &crate::Topic) -> Validation {
    if topic.name == REGISTRY_TOPIC {
        return Validation::default();
    }
    topic.config.schema_validation()
}

/// Runs `f` with the record rule for `topic` under `validation`.
pub fn with_rule<T>(
    validation: &Validation,
    ids: &SchemaIds,
    topic: &str,
    f: impl FnOnce(Option<&SchemaIdRule>) -> T,
) -> T {
    if !validation.any() {
        return f(None);
    }
    let check = |is_key: bool, id: i32| validation.refusal(ids, topic, is_key, id);
    let rule = SchemaIdRule {
        key: validation.key,
        value: validation.value,
        check: &check,
    };
    f(Some(&rule))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_strategy_names_the_subjects_an_id_may_be_under() {
        let ids = SchemaIds::new(BTreeMap::from([
            ("orders-value".to_string(), BTreeSet::from([1, 2])),
            ("orders-shop.Order".to_string(), BTreeSet::from([5])),
            ("shop.Money".to_string(), BTreeSet::from([7])),
        ]));
        let topic = |strategy: &str| Validation {
            key: true,
            value: true,
            key_strategy: SUBJECT_NAME_STRATEGIES[0].to_string(),
            value_strategy: strategy.to_string(),
        };
        let by_topic = topic(SUBJECT_NAME_STRATEGIES[0]);
        assert_eq!(by_topic.refusal(&ids, "orders", false, 2), None);
        assert_eq!(
            by_topic.refusal(&ids, "orders", false, 7).as_deref(),
            Some("the value's schema id 7 is not registered under subject orders-value (confluent.value.schema.validation is on for orders)")
        );
        assert!(
            by_topic.refusal(&ids, "orders", true, 1).is_some(),
            "no orders-key subject"
        );
        let by_record = topic(SUBJECT_NAME_STRATEGIES[1]);
        assert_eq!(by_record.refusal(&ids, "orders", false, 7), None);
        assert!(by_record.refusal(&ids, "orders", false, 9).is_some());
        let by_topic_record = topic(SUBJECT_NAME_STRATEGIES[2]);
        assert_eq!(by_topic_record.refusal(&ids, "orders", false, 5), None);
        assert!(by_topic_record.refusal(&ids, "orders", false, 7).is_some());
        assert!(by_topic_record.refusal(&ids, "order", false, 5).is_some());
    }
}
