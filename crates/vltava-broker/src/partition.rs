//! One partition on this broker: its log, leader epoch, high watermark and
//! idempotent-producer state.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};

use bytes::BytesMut;
use parking_lot::Mutex;
use uuid::Uuid;
use vltava_log::{Log, LogConfig, LogError, ReadSlice};
use vltava_record::{set_log_append_time, BatchHeader};

use crate::error::ApiError;
use crate::producer_state::{ProducerStateMap, SequenceCheck};

/// Where an accepted batch went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    /// The broker's append time for LogAppendTime topics, else -1.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// True when the batch was a retry of one already in the log.
    pub duplicate: bool,
}

pub struct Partition {
    pub topic_id: Uuid,
    pub index: i32,
    dir: PathBuf,
    log: Log,
    leader_epoch: AtomicI32,
    /// Offsets below this are committed and visible to consumers. On a single
    /// replica it follows the log end; replication will hold it back until
    /// the in-sync replicas have the data.
    high_watermark: AtomicI64,
    /// The partition's single writer: held from the sequence check through
    /// the append so that both see the same state. Never held across an
    /// await (there is none on this path).
    writer: Mutex<ProducerStateMap>,
}

impl Partition {
    pub fn dir_name(topic: &str, index: i32) -> String {
        format!("{topic}-{index}")
    }

    pub fn open(
        data_dir: &Path,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        leader_epoch: i32,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<Partition, LogError> {
        let dir = data_dir.join(Self::dir_name(topic, index));
        let log = Log::open(&dir, config, now_ms)?;
        let mut producers = ProducerStateMap::default();
        for header in log.recovered_tail_batches() {
            let timestamp = if header.is_log_append_time() {
                header.max_timestamp
            } else {
                -1
            };
            producers.record(&header, header.base_offset, timestamp);
        }
        let high_watermark = AtomicI64::new(log.log_end_offset());
        Ok(Partition {
            topic_id,
            index,
            dir,
            log,
            leader_epoch: AtomicI32::new(leader_epoch),
            high_watermark,
            writer: Mutex::new(producers),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Appends one validated batch, enforcing idempotent-producer sequences.
    pub fn append(
        &self,
        mut batch: BytesMut,
        header: &BatchHeader,
        log_append_time: bool,
        now_ms: i64,
    ) -> Result<Appended, ApiError> {
        let mut producers = self.writer.lock();
        if let SequenceCheck::Duplicate {
            base_offset,
            timestamp_ms,
        } = producers.check(header)?
        {
            return Ok(Appended {
                base_offset,
                log_append_time_ms: timestamp_ms,
                log_start_offset: self.log.log_start_offset(),
                duplicate: true,
            });
        }
        let log_append_time_ms = if log_append_time {
            set_log_append_time(&mut batch, now_ms);
            now_ms
        } else {
            -1
        };
        let info = self.log.append(batch, self.leader_epoch(), now_ms)?;
        producers.record(header, info.base_offset, log_append_time_ms);
        drop(producers);
        // Single replica: everything appended is committed.
        self.high_watermark
            .store(info.last_offset + 1, Ordering::Release);
        Ok(Appended {
            base_offset: info.base_offset,
            log_append_time_ms,
            log_start_offset: info.log_start_offset,
            duplicate: false,
        })
    }

    /// Reads from `offset` up to the high watermark.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadSlice, LogError> {
        self.log.read(offset, self.high_watermark(), max_bytes)
    }

    /// DeleteRecords: `offset` -1 means the high watermark.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, ApiError> {
        let high_watermark = self.high_watermark();
        let target = if offset == -1 { high_watermark } else { offset };
        if target < 0 || target > high_watermark {
            return Err(ApiError::new(
                vltava_protocol::ResponseError::OffsetOutOfRange,
                format!(
                    "cannot delete records before {target}: the high watermark is {high_watermark}"
                ),
            ));
        }
        let _writer = self.writer.lock();
        Ok(self.log.delete_records_before(target)?)
    }
}
