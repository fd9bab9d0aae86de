use std::path::Path;

use bytes::Bytes;
use tracing::info;
use vltava_log::{Log, LogConfig, LogError};
use vltava_record::{batches, decode_records, validate_batch, BatchBuilder, Compression};

use crate::image::MetadataImage;
use crate::record::MetaRecord;

/// The metadata log's directory under the first `log.dirs` entry, named as
/// Kafka's KRaft names it.
pub const METADATA_DIR: &str = "__cluster_metadata-0";

/// Reads during replay are done in chunks of this many bytes (a batch larger
/// than this is still returned whole by the log).
const REPLAY_READ_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata log: {0}")]
    Log(#[from] LogError),
    #[error("metadata log at offset {offset} holds an undecodable record: {reason}")]
    Corrupt { offset: i64, reason: String },
}

/// The local metadata log and the image it produces.
///
/// Not internally synchronised: the broker owns it behind one mutex, which
/// is what serialises metadata changes.
pub struct MetadataStore {
    log: Log,
    image: MetadataImage,
}

impl MetadataStore {
    /// Opens (or creates) the metadata log in `dir` and replays it.
    pub fn open(dir: &Path, now_ms: i64) -> Result<MetadataStore, MetaError> {
        let config = LogConfig {
            // Metadata must never expire and is tiny.
            retention_ms: -1,
            retention_bytes: -1,
            segment_bytes: 64 << 20,
            ..LogConfig::default()
        };
        let log = Log::open(dir, config, now_ms)?;
        let mut store = MetadataStore {
            log,
            image: MetadataImage::default(),
        };
        let applied = store.replay()?;
        info!(
            records = applied,
            topics = store.image.topics.len(),
            "metadata log replayed"
        );
        Ok(store)
    }

    fn replay(&mut self) -> Result<usize, MetaError> {
        let end = self.log.log_end_offset();
        let mut offset = self.log.log_start_offset();
        let mut applied = 0;
        while offset < end {
            let slice = self.log.read(offset, end, REPLAY_READ_BYTES)?;
            let bytes = slice.to_bytes().map_err(LogError::from)?;
            if bytes.is_empty() {
                break;
            }
            for batch in batches(&bytes) {
                let batch = batch.map_err(|e| corrupt(offset, e))?;
                let header = validate_batch(&batch).map_err(|e| corrupt(offset, e))?;
                for record in decode_records(&batch).map_err(|e| corrupt(offset, e))? {
                    let value = record.value.unwrap_or_default();
                    let record: MetaRecord =
                        serde_json::from_slice(&value).map_err(|e| corrupt(offset, e))?;
                    self.image.apply(&record);
                    applied += 1;
                }
                offset = header.next_offset();
            }
        }
        Ok(applied)
    }

    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// Durably appends `records` as one batch (all or nothing), then applies
    /// them to the image. On error the image is unchanged.
    pub fn append(&mut self, records: &[MetaRecord], now_ms: i64) -> Result<(), MetaError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut builder = BatchBuilder::new(Compression::None);
        for record in records {
            let value = serde_json::to_vec(record).expect("metadata records always serialise");
            builder = builder.record(None, Some(Bytes::from(value)), Vec::new(), now_ms);
        }
        self.log.append(builder.build(), 0, now_ms)?;
        self.log.flush()?;
        for record in records {
            self.image.apply(record);
        }
        Ok(())
    }

    pub fn close(&self) -> Result<(), MetaError> {
        Ok(self.log.close()?)
    }
}

fn corrupt(offset: i64, reason: impl std::fmt::Display) -> MetaError {
    MetaError::Corrupt {
        offset,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigResource;
    use uuid::Uuid;

    #[test]
    fn changes_survive_reopen_and_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METADATA_DIR);
        let topic_id = Uuid::new_v4();
        {
            let mut store = MetadataStore::open(&path, 1).unwrap();
            store
                .append(
                    &[
                        MetaRecord::Topic {
                            name: "orders".into(),
                            topic_id,
                        },
                        MetaRecord::Partition {
                            topic_id,
                            partition: 0,
                            replicas: vec![1],
                            leader: 1,
                            leader_epoch: 0,
                            isr: None,
                            partition_epoch: 0,
                            adding: vec![],
                            removing: vec![],
                            elr: vec![],
                        },
                    ],
                    1,
                )
                .unwrap();
            store
                .append(
                    &[MetaRecord::Config {
                        resource: ConfigResource::Topic("orders".into()),
                        name: "retention.ms".into(),
                        value: Some("1000".into()),
                    }],
                    2,
                )
                .unwrap();
            store
                .append(
                    &[MetaRecord::ProducerIds {
                        next_producer_id: 2000,
                    }],
                    3,
                )
                .unwrap();
            store.close().unwrap();
        }
        let store = MetadataStore::open(&path, 4).unwrap();
        let image = store.image();
        let topic = &image.topics["orders"];
        assert_eq!(topic.topic_id, topic_id);
        assert_eq!(topic.partitions.len(), 1);
        assert_eq!(topic.partitions[0].leader, 1);
        assert_eq!(
            image.configs_of(&ConfigResource::Topic("orders".into()))["retention.ms"],
            "1000"
        );
        assert_eq!(image.next_producer_id, 2000);
    }

    #[test]
    fn removing_a_topic_drops_its_configs() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetadataStore::open(dir.path(), 1).unwrap();
        let topic_id = Uuid::new_v4();
        store
            .append(
                &[
                    MetaRecord::Topic {
                        name: "t".into(),
                        topic_id,
                    },
                    MetaRecord::Config {
                        resource: ConfigResource::Topic("t".into()),
                        name: "retention.ms".into(),
                        value: Some("5".into()),
                    },
                    MetaRecord::RemoveTopic { topic_id },
                ],
                1,
            )
            .unwrap();
        assert!(store.image().topics.is_empty());
        assert!(store.image().configs.is_empty());
    }
}
