//! Server-side schema validation's view of the schema registry: which
//! schema ids each subject holds, and the rule a topic's
//! `confluent.key.schema.validation` / `confluent.value.schema.validation`
//! make of it (what Confluent Server and Redpanda offer).
//!
//! With validation on, every key or value produced to the topic must
//! start with Confluent's wire-format prefix (magic byte 0, a 4-byte
//! schema id) naming a schema registered under the subject the topic's
//! subject name strategy gives: `TOPIC-key`/`TOPIC-value` for
//! `TopicNameStrategy` (the default), the record's name (the schema's: an
//! Avro record's full name, a JSON Schema's title, a Protobuf message's
//! full name) for `RecordNameStrategy`, `TOPIC-<record name>` for
//! `TopicRecordNameStrategy`. Soft-deleted versions do not count. Records
//! that fail are refused with INVALID_RECORD and a message each.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use vltava_record::SchemaIdRule;

/// Schema ids by subject, live versions only, and the record names of
/// each id's schema.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SchemaIds {
    by_subject: BTreeMap<String, BTreeSet<i32>>,
    record_names: BTreeMap<i32, Vec<String>>,
}

impl SchemaIds {
    pub fn new(
        by_subject: BTreeMap<String, BTreeSet<i32>>,
        record_names: BTreeMap<i32, Vec<String>>,
    ) -> SchemaIds {
        SchemaIds {
            by_subject,
            record_names,
        }
    }

    fn under(&self, subject: &str, id: i32) -> bool {
        self.by_subject
            .get(subject)
            .is_some_and(|ids| ids.contains(&id))
    }

    /// Whether a subject `prefix` + one of the id's record names holds it.
    fn under_record_name(&self, prefix: &str, id: i32) -> bool {
        self.record_names.get(&id).is_some_and(|names| {
            names
                .iter()
                .any(|n| self.under(&format!("{prefix}{n}"), id))
        })
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

/// Where a validated key's or value's schema id must be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `TOPIC-key` / `TOPIC-value`.
    Topic,
    /// The record's name.
    Record,
    /// `TOPIC-<record name>`.
    TopicRecord,
}

impl Strategy {
    /// The strategy a config's class name names ([`SUBJECT_NAME_STRATEGIES`];
    /// the config refuses others, so anything else is the default).
    pub fn named(class: &str) -> Strategy {
        match class.rsplit('.').next() {
            Some("RecordNameStrategy") => Strategy::Record,
            Some("TopicRecordNameStrategy") => Strategy::TopicRecord,
            _ => Strategy::Topic,
        }
    }
}

/// A topic's validation: the strategy of each validated field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validation {
    pub key: Option<Strategy>,
    pub value: Option<Strategy>,
}

/// What `topic` validates, if anything: its configs', nothing for the
/// registry's topic.
pub fn validation_of(topic: &crate::Topic) -> Option<Validation> {
    if topic.name == REGISTRY_TOPIC {
        return None;
    }
    topic.config.schema_validation()
}

/// Runs `f` with the record rule `validation` makes for `topic` (the
/// subjects it names built once, not per record).
pub fn with_rule<T>(
    validation: Option<Validation>,
    ids: &SchemaIds,
    topic: &str,
    f: impl FnOnce(Option<&SchemaIdRule>) -> T,
) -> T {
    let Some(validation) = validation else {
        return f(None);
    };
    let subjects = [format!("{topic}-key"), format!("{topic}-value")];
    let prefix = format!("{topic}-");
    let check = |is_key: bool, id: i32| {
        let (strategy, subject, field) = if is_key {
            (validation.key?, &subjects[0], "key")
        } else {
            (validation.value?, &subjects[1], "value")
        };
        let found = match strategy {
            Strategy::Topic => ids.under(subject, id),
            Strategy::Record => ids.under_record_name("", id),
            Strategy::TopicRecord => ids.under_record_name(&prefix, id),
        };
        (!found).then(|| {
            let under = match strategy {
                Strategy::Topic => format!("subject {subject}"),
                Strategy::Record => "the subject of its record name".to_string(),
                Strategy::TopicRecord => format!("a subject {prefix}<its record name>"),
            };
            format!("the {field}'s schema id {id} is not registered under {under} (confluent.{field}.schema.validation is on for {topic})")
        })
    };
    let rule = SchemaIdRule {
        key: validation.key.is_some(),
        value: validation.value.is_some(),
        check: &check,
    };
    f(Some(&rule))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_strategy_names_the_subjects_an_id_may_be_under() {
        let ids = SchemaIds::new(
            BTreeMap::from([
                ("orders-value".to_string(), BTreeSet::from([1, 2])),
                ("orders-shop.Order".to_string(), BTreeSet::from([5])),
                ("shop.Money".to_string(), BTreeSet::from([7])),
                ("elsewhere-value".to_string(), BTreeSet::from([8])),
            ]),
            BTreeMap::from([
                (1, vec!["shop.Order".to_string()]),
                (5, vec!["shop.Order".to_string()]),
                (7, vec!["shop.Money".to_string()]),
                (8, vec!["shop.Money".to_string()]),
            ]),
        );
        let refusal = |class: &str, topic: &str, is_key: bool, id: i32| {
            let validation = Validation {
                key: Some(Strategy::Topic),
                value: Some(Strategy::named(class)),
            };
            with_rule(Some(validation), &ids, topic, |rule| {
                (rule.unwrap().check)(is_key, id)
            })
        };
        let [by_topic, by_record, by_topic_record] = SUBJECT_NAME_STRATEGIES;
        assert_eq!(refusal(by_topic, "orders", false, 2), None);
        assert_eq!(
            refusal(by_topic, "orders", false, 7).as_deref(),
            Some("the value's schema id 7 is not registered under subject orders-value (confluent.value.schema.validation is on for orders)")
        );
        assert!(
            refusal(by_topic, "orders", true, 1).is_some(),
            "no orders-key subject"
        );
        // The record's name: shop.Money holds 7; 8 (also a shop.Money) is
        // only under elsewhere-value, and 1 (a shop.Order) under a topic.
        assert_eq!(refusal(by_record, "orders", false, 7), None);
        assert!(refusal(by_record, "orders", false, 8).is_some());
        assert!(refusal(by_record, "orders", false, 1).is_some());
        assert!(refusal(by_record, "orders", false, 9).is_some());
        // TOPIC-<record name>: orders-shop.Order holds 5, not 1.
        assert_eq!(refusal(by_topic_record, "orders", false, 5), None);
        assert!(refusal(by_topic_record, "orders", false, 1).is_some());
        assert!(refusal(by_topic_record, "orders", false, 7).is_some());
        assert!(refusal(by_topic_record, "order", false, 5).is_some());
        // A field not validated has nothing to refuse.
        let value_only = Validation {
            key: None,
            value: Some(Strategy::Topic),
        };
        with_rule(Some(value_only), &ids, "orders", |rule| {
            let rule = rule.unwrap();
            assert!(!rule.key && rule.value);
        });
        with_rule(None, &ids, "orders", |rule| assert!(rule.is_none()));
    }
}
