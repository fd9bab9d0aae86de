//! Jepsen's queue checks over what the workload saw: every acknowledged
//! write against every read, each anomaly counted (and the first few
//! named) rather than the run stopping at the first.

use std::collections::{BTreeMap, BTreeSet};

/// A write the broker acknowledged: `value` at `offset` of `partition`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The producer (incarnation) that sent it.
    pub producer: String,
    /// Send order within that producer.
    pub seq: u64,
    pub partition: i32,
    /// Negative when the client acknowledged it without an offset
    /// (librdkafka's "implicit ack": a later batch of the same producer
    /// succeeded, so this one was written).
    pub offset: i64,
    pub value: String,
}

/// One record a consumer returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The consumer that polled it.
    pub consumer: String,
    /// Bumped by each rebalance of that consumer: offsets go back
    /// legitimately only across one.
    pub generation: u64,
    pub partition: i32,
    pub offset: i64,
    pub value: String,
}

/// Anomaly counts, Jepsen's names.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Anomalies {
    /// Acknowledged, never read, while a later offset of its partition was.
    pub lost: usize,
    /// Acknowledged and never read by the end (and not lost).
    pub unseen: usize,
    /// One value at two offsets.
    pub duplicate: usize,
    /// One offset with two values (across reads), or a value read at an
    /// offset other than the one it was acknowledged at.
    pub inconsistent_offsets: usize,
    /// A consumer's offsets in one partition went back or repeated within
    /// one generation.
    pub nonmonotonic_polls: usize,
    /// A consumer jumped over offsets within one generation although some
    /// of them hold records (Jepsen's poll-skip; the workload writes no
    /// transactions, so offsets are dense).
    pub skipped_polls: usize,
    /// A producer's acknowledged offsets in one partition did not grow in
    /// send order.
    pub nonmonotonic_sends: usize,
    /// A value read that no producer sent.
    pub phantom: usize,
    /// The first few anomalies, described.
    pub examples: Vec<String>,
}

/// How many anomalies are described in [`Anomalies::examples`].
pub const EXAMPLES_MAX: usize = 20;

impl Anomalies {
    pub fn total(&self) -> usize {
        self.lost
            + self.unseen
            + self.duplicate
            + self.inconsistent_offsets
            + self.nonmonotonic_polls
            + self.skipped_polls
            + self.nonmonotonic_sends
            + self.phantom
    }

    fn note(&mut self, what: String) {
        if self.examples.len() < EXAMPLES_MAX {
            self.examples.push(what);
        }
    }
}

/// Checks `acks` (acknowledged writes) against `reads` (everything every
/// consumer returned, the final read included). `sent` is every value
/// any producer tried to send, acknowledged or not.
pub fn check(acks: &[Ack], reads: &[Read], sent: &BTreeSet<String>) -> Anomalies {
    let mut out = Anomalies::default();
    // What each offset held, and where each value was seen.
    let mut at_offset: BTreeMap<(i32, i64), BTreeSet<&str>> = BTreeMap::new();
    let mut offsets_of: BTreeMap<&str, BTreeSet<(i32, i64)>> = BTreeMap::new();
    let mut highest_read: BTreeMap<i32, i64> = BTreeMap::new();
    for r in reads {
        at_offset
            .entry((r.partition, r.offset))
            .or_default()
            .insert(&r.value);
        offsets_of
            .entry(&r.value)
            .or_default()
            .insert((r.partition, r.offset));
        let top = highest_read.entry(r.partition).or_insert(-1);
        *top = (*top).max(r.offset);
    }
    for ((partition, offset), values) in &at_offset {
        if values.len() > 1 {
            out.inconsistent_offsets += 1;
            out.note(format!(
                "inconsistent: partition {partition} offset {offset} read as {values:?}"
            ));
        }
    }
    for (value, places) in &offsets_of {
        if places.len() > 1 {
            out.duplicate += 1;
            out.note(format!("duplicate: {value} at {places:?}"));
        }
        if !sent.contains(*value) {
            out.phantom += 1;
            out.note(format!("phantom: {value} at {places:?} was never sent"));
        }
    }
    for ack in acks {
        match offsets_of.get(ack.value.as_str()) {
            Some(places) => {
                let here = match ack.offset {
                    offset if offset >= 0 => places.contains(&(ack.partition, offset)),
                    _ => places.iter().any(|(p, _)| *p == ack.partition),
                };
                if !here {
                    out.inconsistent_offsets += 1;
                    out.note(format!(
                        "inconsistent: {} acknowledged at {}:{} but read at {places:?}",
                        ack.value, ack.partition, ack.offset
                    ));
                }
            }
            None => {
                // Without an offset, "later" is unknown: counted unseen.
                let later_read = ack.offset >= 0
                    && highest_read
                        .get(&ack.partition)
                        .is_some_and(|&top| top > ack.offset);
                if later_read {
                    out.lost += 1;
                    out.note(format!(
                        "lost: {} acknowledged at {}:{}, never read, later offsets were",
                        ack.value, ack.partition, ack.offset
                    ));
                } else {
                    out.unseen += 1;
                    out.note(format!(
                        "unseen: {} acknowledged at {}:{}, never read",
                        ack.value, ack.partition, ack.offset
                    ));
                }
            }
        }
    }
    // Per producer and partition, in send order.
    let mut sends: BTreeMap<(&str, i32), Vec<(u64, i64)>> = BTreeMap::new();
    for ack in acks.iter().filter(|a| a.offset >= 0) {
        sends
            .entry((&ack.producer, ack.partition))
            .or_default()
            .push((ack.seq, ack.offset));
    }
    for ((producer, partition), mut list) in sends {
        list.sort_unstable();
        for pair in list.windows(2) {
            if pair[1].1 <= pair[0].1 {
                out.nonmonotonic_sends += 1;
                out.note(format!(
                    "nonmonotonic send: {producer} partition {partition}: seq {} at {} after seq {} at {}",
                    pair[1].0, pair[1].1, pair[0].0, pair[0].1
                ));
            }
        }
    }
    // Per consumer, generation and partition, in poll order.
    let mut last: BTreeMap<(&str, u64, i32), i64> = BTreeMap::new();
    for r in reads {
        let key = (r.consumer.as_str(), r.generation, r.partition);
        if let Some(&previous) = last.get(&key) {
            if r.offset <= previous {
                out.nonmonotonic_polls += 1;
                out.note(format!(
                    "nonmonotonic poll: {} partition {} offset {} after {previous}",
                    r.consumer, r.partition, r.offset
                ));
            } else if let Some(((_, skipped), _)) = at_offset
                .range((r.partition, previous + 1)..(r.partition, r.offset))
                .next()
            {
                out.skipped_polls += 1;
                out.note(format!(
                    "skipped poll: {} partition {} went from offset {previous} to {}, over {skipped}",
                    r.consumer, r.partition, r.offset
                ));
            }
        }
        last.insert(key, r.offset);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(producer: &str, seq: u64, partition: i32, offset: i64, value: &str) -> Ack {
        Ack {
            producer: producer.into(),
            seq,
            partition,
            offset,
            value: value.into(),
        }
    }

    fn read(consumer: &str, generation: u64, partition: i32, offset: i64, value: &str) -> Read {
        Read {
            consumer: consumer.into(),
            generation,
            partition,
            offset,
            value: value.into(),
        }
    }

    fn sent(values: &[&str]) -> BTreeSet<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn a_clean_history_has_no_anomalies() {
        let acks = [ack("p", 0, 0, 0, "a"), ack("p", 1, 0, 1, "b")];
        let reads = [
            read("c", 0, 0, 0, "a"),
            read("c", 0, 0, 1, "b"),
            // A rebalance may legitimately send a consumer back.
            read("c", 1, 0, 0, "a"),
            read("final", 0, 0, 0, "a"),
            read("final", 0, 0, 1, "b"),
        ];
        let found = check(&acks, &reads, &sent(&["a", "b", "never-acked"]));
        assert_eq!(found, Anomalies::default());
    }

    #[test]
    fn every_anomaly_is_counted() {
        let acks = [
            ack("p", 0, 0, 0, "a"),
            ack("p", 1, 0, 1, "lost"),
            ack("p", 2, 0, 2, "c"),
            ack("p", 3, 0, 3, "unseen"),
            ack("p", 4, 1, 5, "x"),
            ack("p", 5, 1, 4, "y"),
        ];
        let reads = [
            read("c", 0, 0, 0, "a"),
            read("c", 0, 0, 2, "c"),
            read("c", 0, 0, 2, "c"),
            read("d", 0, 0, 2, "other"),
            read("c", 0, 1, 5, "x"),
            read("c", 0, 1, 6, "x"),
            read("c", 0, 1, 4, "y"),
            read("e", 0, 2, 0, "r"),
            read("e", 0, 2, 2, "t"),
            read("final", 0, 2, 0, "r"),
            read("final", 0, 2, 1, "s"),
            read("final", 0, 2, 2, "t"),
        ];
        let found = check(
            &acks,
            &reads,
            &sent(&["a", "lost", "c", "unseen", "x", "y", "r", "s", "t"]),
        );
        assert_eq!(
            found,
            Anomalies {
                lost: 1,
                unseen: 1,
                // "x" at 1:5 and 1:6.
                duplicate: 1,
                // 0:2 held "c" and "other".
                inconsistent_offsets: 1,
                // c read 0:2 twice, and 1:4 after 1:6.
                nonmonotonic_polls: 2,
                // e went from 2:0 to 2:2 while 2:1 holds "s".
                skipped_polls: 1,
                // y (seq 5) acknowledged below x (seq 4).
                nonmonotonic_sends: 1,
                // "other" was never sent.
                phantom: 1,
                examples: found.examples.clone(),
            }
        );
        assert_eq!(found.total(), 9);
    }

    #[test]
    fn an_ack_without_offset_needs_a_read_in_its_partition() {
        let acks = [
            ack("p", 0, 0, -1001, "a"),
            ack("p", 1, 0, -1001, "b"),
            ack("p", 2, 0, 7, "c"),
        ];
        let reads = [
            read("c", 0, 0, 5, "a"),
            read("c", 0, 1, 6, "b"),
            read("c", 0, 0, 7, "c"),
        ];
        let found = check(&acks, &reads, &sent(&["a", "b", "c"]));
        // "b" was read in partition 1, not its own.
        assert_eq!(found.inconsistent_offsets, 1, "{:?}", found.examples);
        assert_eq!(found.nonmonotonic_sends, 0);
        assert_eq!(found.total(), 1);
    }

    #[test]
    fn a_value_read_elsewhere_than_acknowledged_is_inconsistent() {
        let acks = [ack("p", 0, 0, 3, "a")];
        let reads = [read("c", 0, 0, 4, "a")];
        let found = check(&acks, &reads, &sent(&["a"]));
        assert_eq!(found.inconsistent_offsets, 1);
        assert_eq!(found.total(), 1);
    }
}
