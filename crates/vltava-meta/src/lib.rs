//! Cluster metadata as an ordered log of records applied to an in-memory image.
//!
//! Everything the broker must remember about topics (names, ids, partition
//! counts, leaders and leader epochs, configs) and about producer-id
//! allocation is a [`MetaRecord`]. Records are appended to a local log in the
//! `__cluster_metadata-0` directory, stored by `vltava-log` as ordinary v2
//! record batches (one batch per change, so a change is all or nothing), and
//! fsynced before the change is acknowledged. Start-up replays the log into a
//! [`MetadataImage`]. A cluster will replicate the same records with Raft; the
//! image and the records do not change when that happens.
//!
//! Invariant: the image is a pure function of the records applied, in order.

mod image;
mod record;
mod store;

pub use image::{
    BrokerEndpoint, BrokerImage, ConfigResource, MetadataImage, PartitionImage, TopicImage,
};
pub use record::MetaRecord;
pub use store::{MetaError, MetadataStore, METADATA_DIR};
