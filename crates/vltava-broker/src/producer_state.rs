//! Idempotent-producer state of one partition: the last batches of every
//! producer id, to detect retries (duplicates) and gaps in sequence numbers.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use vltava_record::{increment_sequence, BatchHeader};

/// Kafka keeps the metadata of this many recent batches per producer, which
/// is why idempotent producers allow at most five requests in flight.
pub const CACHED_BATCHES_PER_PRODUCER: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct CachedBatch {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: i64,
    timestamp_ms: i64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<CachedBatch>,
    /// The newest batch timestamp seen (its max timestamp, or the append
    /// time for LogAppendTime): what `producer.id.expiration.ms` counts from.
    last_timestamp_ms: i64,
}

/// One producer's state, for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub last_timestamp_ms: i64,
    pub newest_batch: Option<BatchSummary>,
}

/// A cached batch of a producer, for display. (Its max timestamp is the
/// producer's `last_timestamp_ms`: it is the newest batch.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// A retry of a batch already in the log: answer with its offset and
    /// append nothing.
    Duplicate { base_offset: i64, timestamp_ms: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer epoch {batch} is older than the current epoch {current}")]
    StaleEpoch { batch: i16, current: i16 },
    #[error("out of order sequence number: expected {expected}, got {received}")]
    OutOfOrder { expected: i32, received: i32 },
}

/// Every idempotent producer's recent batches on one partition. It is
/// snapshotted (`<offset>.snapshot`, see `vltava_log::snapshot`) at every
/// segment roll and at clean shutdown, and rebuilt from the newest snapshot
/// plus the batch headers after it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStateMap {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateMap {
    /// Checks `batch` against what this partition knows of its producer,
    /// following Kafka's rules: a new epoch must start at sequence 0; within an
    /// epoch a batch equal to a cached one is a duplicate and anything else
    /// must continue the sequence; an unknown producer may start anywhere
    /// (its state may have been lost with old segments).
    pub fn check(&self, batch: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        if batch.producer_id < 0 || batch.base_sequence < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        if batch.producer_epoch < entry.epoch {
            return Err(SequenceError::StaleEpoch {
                batch: batch.producer_epoch,
                current: entry.epoch,
            });
        }
        if batch.producer_epoch > entry.epoch {
            return match batch.base_sequence {
                0 => Ok(SequenceCheck::Append),
                received => Err(SequenceError::OutOfOrder {
                    expected: 0,
                    received,
                }),
            };
        }
        let last_sequence = batch.last_sequence();
        if let Some(cached) = entry
            .batches
            .iter()
            .find(|c| c.first_sequence == batch.base_sequence && c.last_sequence == last_sequence)
        {
            return Ok(SequenceCheck::Duplicate {
                base_offset: cached.base_offset,
                timestamp_ms: cached.timestamp_ms,
            });
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |last| increment_sequence(last.last_sequence, 1));
        if batch.base_sequence != expected {
            return Err(SequenceError::OutOfOrder {
                expected,
                received: batch.base_sequence,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Records a batch that was appended at `base_offset`.
    pub fn record(&mut self, batch: &BatchHeader, base_offset: i64, timestamp_ms: i64) {
        if batch.producer_id < 0 || batch.base_sequence < 0 {
            return;
        }
        let entry = self.producers.entry(batch.producer_id).or_default();
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == CACHED_BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        let timestamp = if timestamp_ms >= 0 {
            timestamp_ms
        } else {
            batch.max_timestamp
        };
        entry.last_timestamp_ms = entry.last_timestamp_ms.max(timestamp);
        entry.batches.push_back(CachedBatch {
            first_sequence: batch.base_sequence,
            last_sequence: batch.last_sequence(),
            base_offset,
            timestamp_ms,
        });
    }
}

impl ProducerStateMap {
    /// Forgets producers whose newest batch is older than `expiration_ms`
    /// (`producer.id.expiration.ms`); returns how many.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        let horizon = now_ms.saturating_sub(expiration_ms);
        self.producers.retain(|_, e| e.last_timestamp_ms >= horizon);
        before - self.producers.len()
    }

    /// Every producer with its newest batch, by producer id (what
    /// `vltava dump-log` prints for a snapshot).
    pub fn summaries(&self) -> Vec<ProducerSummary> {
        let mut out: Vec<ProducerSummary> = self
            .producers
            .iter()
            .map(|(id, e)| ProducerSummary {
                producer_id: *id,
                producer_epoch: e.epoch,
                last_timestamp_ms: e.last_timestamp_ms,
                newest_batch: e.batches.back().map(|b| BatchSummary {
                    first_sequence: b.first_sequence,
                    last_sequence: b.last_sequence,
                    base_offset: b.base_offset,
                }),
            })
            .collect();
        out.sort_by_key(|s| s.producer_id);
        out
    }

    /// The snapshot payload.
    pub fn to_snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("producer state serialises")
    }

    /// Reads a snapshot payload back.
    pub fn from_snapshot(payload: &[u8]) -> Result<ProducerStateMap, String> {
        serde_json::from_slice(payload).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(producer_id: i64, epoch: i16, base_sequence: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            records_count: records,
        }
    }

    #[test]
    fn retry_of_a_cached_batch_is_a_duplicate() {
        let mut state = ProducerStateMap::default();
        let first = batch(7, 0, 0, 3);
        assert_eq!(state.check(&first), Ok(SequenceCheck::Append));
        state.record(&first, 10, 99);
        let second = batch(7, 0, 3, 2);
        assert_eq!(state.check(&second), Ok(SequenceCheck::Append));
        state.record(&second, 13, 100);
        assert_eq!(
            state.check(&first),
            Ok(SequenceCheck::Duplicate {
                base_offset: 10,
                timestamp_ms: 99
            })
        );
    }

    #[test]
    fn gaps_and_stale_epochs_are_refused() {
        let mut state = ProducerStateMap::default();
        state.record(&batch(7, 2, 0, 1), 0, 0);
        assert_eq!(
            state.check(&batch(7, 2, 5, 1)),
            Err(SequenceError::OutOfOrder {
                expected: 1,
                received: 5
            })
        );
        assert_eq!(
            state.check(&batch(7, 1, 1, 1)),
            Err(SequenceError::StaleEpoch {
                batch: 1,
                current: 2
            })
        );
        assert_eq!(
            state.check(&batch(7, 3, 4, 1)),
            Err(SequenceError::OutOfOrder {
                expected: 0,
                received: 4
            })
        );
        assert_eq!(state.check(&batch(7, 3, 0, 1)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut state = ProducerStateMap::default();
        for i in 0..6 {
            state.record(&batch(1, 0, i, 1), i as i64, 0);
        }
        // The first batch was evicted: it is no longer a duplicate but a gap.
        assert!(state.check(&batch(1, 0, 0, 1)).is_err());
        assert_eq!(
            state.check(&batch(1, 0, 1, 1)),
            Ok(SequenceCheck::Duplicate {
                base_offset: 1,
                timestamp_ms: 0
            })
        );
    }

    #[test]
    fn unknown_producer_may_start_anywhere_and_sequences_wrap() {
        let mut state = ProducerStateMap::default();
        let b = batch(9, 0, i32::MAX, 1);
        assert_eq!(state.check(&b), Ok(SequenceCheck::Append));
        state.record(&b, 0, 0);
        assert_eq!(state.check(&batch(9, 0, 0, 1)), Ok(SequenceCheck::Append));
    }
}
