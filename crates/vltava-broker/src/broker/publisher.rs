//! The metadata publisher: the one writer of the broker's topic map and
//! dynamic configs. The quorum's state machine calls it after each
//! committed change with the image as it now is; it makes the broker's
//! topics match that image: opens the partitions of new topics and added
//! partitions, gives reconfigured topics their new config, and fences and
//! removes deleted topics' logs. The broker's request handlers only read
//! what it publishes; the controller side proposes changes and waits for
//! them to come back through here.
//!
//! Every step compares the broker's state with the image instead of
//! applying a record blindly, so publishing the same change twice (an
//! activation racing an apply) changes nothing the second time.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tracing::{error, info, warn};
use uuid::Uuid;
use vltava_log::storage::Storage;
use vltava_meta::{ConfigResource, MetaRecord, MetadataImage, TopicImage};
use vltava_quorum::{Change, Publisher};

use super::dynamic_config::DynamicConfigs;
use super::{belongs_to, open_partition, Topic};
use crate::clock::Clock;
use crate::config::{BrokerConfig, TopicConfig};
use crate::partition::{Assignment, Partition};

/// When a broker incarnation's registration and latest fence were applied.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BrokerEvents {
    pub(crate) registered: Option<tokio::time::Instant>,
    pub(crate) fenced: Option<tokio::time::Instant>,
}

/// Broker incarnations remembered: past this, the oldest are dropped.
const BROKER_EVENTS_MAX: usize = 10_000;

pub(crate) struct TopicPublisher {
    config: BrokerConfig,
    /// What partition logs are opened through (faulty only under
    /// `unsafe.testing.storage.fault.file`).
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    topics: Arc<RwLock<BTreeMap<String, Arc<Topic>>>>,
    dynamic: Arc<RwLock<DynamicConfigs>>,
    /// Where removed topics' names go for the group coordinator, which
    /// forgets their committed offsets (it writes to `__consumer_offsets`:
    /// not work for the publisher, which runs under the image's lock).
    removed: Arc<Mutex<Vec<String>>>,
    /// When each broker incarnation's registration and fence were applied
    /// here (the controller's fencing goes by them).
    broker_events: Arc<Mutex<BTreeMap<(i32, i64), BrokerEvents>>>,
    /// Notified when partitions were opened, removed or changed leader:
    /// the replica fetchers look again at what this broker follows.
    roles_changed: Arc<tokio::sync::Notify>,
    /// Held while publishing. `false` until the broker has caught up with
    /// its metadata log and cleared leftovers ([`TopicPublisher::activate`]):
    /// changes applied before that are taken from the image then.
    active: Mutex<bool>,
}

impl TopicPublisher {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: BrokerConfig,
        clock: Arc<dyn Clock>,
        topics: Arc<RwLock<BTreeMap<String, Arc<Topic>>>>,
        dynamic: Arc<RwLock<DynamicConfigs>>,
        removed: Arc<Mutex<Vec<String>>>,
        broker_events: Arc<Mutex<BTreeMap<(i32, i64), BrokerEvents>>>,
        roles_changed: Arc<tokio::sync::Notify>,
        storage: Arc<dyn Storage>,
    ) -> TopicPublisher {
        TopicPublisher {
            config,
            storage,
            clock,
            topics,
            dynamic,
            removed,
            broker_events,
            roles_changed,
            active: Mutex::new(false),
        }
    }

    /// Publishes the whole `image` (opening every partition: start-up) and
    /// from then on every change.
    pub(crate) fn activate(&self, image: &MetadataImage) {
        let mut active = self.active.lock();
        self.reconcile_all(image, Quiet::Yes);
        *active = true;
    }

    fn reconcile_all(&self, image: &MetadataImage, quiet: Quiet) {
        *self.dynamic.write() = DynamicConfigs::from_image(image, self.config.node_id);
        let mut names: BTreeSet<String> = self.topics.read().keys().cloned().collect();
        names.extend(image.topics.keys().cloned());
        for name in names {
            self.reconcile(&name, image, quiet);
        }
    }

    /// Notes when registrations and fences were applied (every node keeps
    /// them; the controller's fencing reads them). Runs whether or not the
    /// publisher is active.
    fn note_broker_events(&self, records: &[MetaRecord]) {
        let now = tokio::time::Instant::now();
        let mut events = self.broker_events.lock();
        for record in records {
            let (key, registered) = match record {
                MetaRecord::RegisterBroker { node_id, epoch, .. } => ((*node_id, *epoch), true),
                MetaRecord::FenceBroker { node_id, epoch } => ((*node_id, *epoch), false),
                _ => continue,
            };
            if events.len() >= BROKER_EVENTS_MAX && !events.contains_key(&key) {
                events.pop_first();
            }
            let entry = events.entry(key).or_default();
            match registered {
                true => entry.registered = Some(now),
                false => entry.fenced = Some(now),
            }
        }
    }

    fn publish_records(&self, image: &MetadataImage, records: &[MetaRecord]) {
        let mut names = BTreeSet::new();
        for record in records {
            match record {
                MetaRecord::Topic { name, .. } => {
                    names.insert(name.clone());
                }
                MetaRecord::Partition { topic_id, .. } | MetaRecord::RemoveTopic { topic_id } => {
                    // A removed topic is gone from the image: its name is
                    // the one the broker still serves it under.
                    let name = self
                        .name_of(*topic_id)
                        .or_else(|| image.topic_by_id(*topic_id).map(|t| t.name.clone()));
                    names.extend(name);
                }
                MetaRecord::Config {
                    resource: ConfigResource::Topic(name),
                    ..
                } => {
                    names.insert(name.clone());
                }
                MetaRecord::Config {
                    resource: ConfigResource::Broker(_),
                    ..
                } => {
                    // Every topic takes its defaults from the broker.
                    return self.reconcile_all(image, Quiet::No);
                }
                // Read from the image where they are used.
                MetaRecord::ProducerIds { .. }
                | MetaRecord::RegisterBroker { .. }
                | MetaRecord::ClusterId { .. }
                | MetaRecord::FenceBroker { .. }
                | MetaRecord::UnfenceBroker { .. }
                | MetaRecord::UnregisterBroker { .. } => {}
            }
        }
        for name in names {
            self.reconcile(&name, image, Quiet::No);
        }
    }

    fn name_of(&self, topic_id: Uuid) -> Option<String> {
        self.topics
            .read()
            .values()
            .find(|t| t.id == topic_id)
            .map(|t| t.name.clone())
    }

    /// Makes the served topic `name` what the image says it is.
    fn reconcile(&self, name: &str, image: &MetadataImage, quiet: Quiet) {
        let wanted = image.topics.get(name);
        let mut current = self.topics.read().get(name).cloned();
        if let Some(served) = &current {
            if wanted.map(|t| t.topic_id) != Some(served.id) {
                self.remove(served);
                current = None;
            }
        }
        let Some(wanted) = wanted else {
            return;
        };
        let overrides = image.configs_of(&ConfigResource::Topic(name.to_string()));
        let config = {
            let dynamic = self.dynamic.read();
            TopicConfig::resolve_with(|def| dynamic.topic_default(&self.config, def), &overrides)
        };
        let Some(served) = current else {
            let partitions = self.open_partitions(wanted, 0, &config);
            if quiet == Quiet::No {
                info!(topic = name, partitions = partitions.len(), "created topic");
            }
            self.insert(wanted, partitions, config, overrides);
            return;
        };
        let mut partitions = served.partitions.clone();
        let moved = self.follow_assignments(wanted, &mut partitions, &served.config);
        let added = wanted.partitions.len().saturating_sub(partitions.len());
        if added > 0 {
            partitions.extend(self.open_partitions(wanted, partitions.len(), &served.config));
            info!(
                topic = name,
                from = served.partitions.len(),
                to = partitions.len(),
                "added partitions"
            );
        }
        if config != served.config {
            for partition in &partitions {
                partition.log().set_config(config.log_config());
                partition.set_min_insync(config.min_insync_replicas());
            }
            info!(topic = name, "topic config changed");
        }
        if moved || added > 0 || config != served.config || overrides != served.overrides {
            self.insert(wanted, partitions, config, overrides);
        }
    }

    /// Gives each served partition its committed leader, epochs and ISR.
    /// A partition this broker became a replica of is opened; one it no
    /// longer is a replica of is fenced, removed and listed as remote.
    /// Returns whether any was replaced.
    fn follow_assignments(
        &self,
        topic: &TopicImage,
        partitions: &mut [Arc<Partition>],
        config: &TopicConfig,
    ) -> bool {
        let node = self.config.node_id;
        let now_ms = self.clock.now_ms();
        let mut replaced = false;
        for (index, partition) in partitions.iter_mut().enumerate() {
            let Some(image) = topic.partitions.get(index) else {
                continue;
            };
            let assignment = Assignment::from_image(image);
            let replica_here = image.replicas.contains(&node);
            if replica_here == partition.is_hosted() {
                if partition.assignment() != assignment {
                    partition.set_assignment(assignment, now_ms);
                    self.roles_changed.notify_one();
                }
                continue;
            }
            if !replica_here {
                info!(topic = %topic.name, partition = index, "no longer a replica here; removing its log");
                // The old entry learns the new leader first: acks=all
                // produces waiting on it answer NOT_LEADER_OR_FOLLOWER now,
                // not REQUEST_TIMED_OUT when their timeout runs out.
                partition.set_assignment(assignment.clone(), now_ms);
                remove_partition_dir(partition, now_ms);
            }
            *partition = self.open_one(topic, index, config, now_ms);
            self.roles_changed.notify_one();
            replaced = true;
        }
        replaced
    }

    fn insert(
        &self,
        topic: &TopicImage,
        partitions: Vec<Arc<Partition>>,
        config: TopicConfig,
        overrides: BTreeMap<String, String>,
    ) {
        self.topics.write().insert(
            topic.name.clone(),
            Arc::new(Topic {
                name: topic.name.clone(),
                id: topic.topic_id,
                partitions,
                config,
                overrides,
            }),
        );
    }

    /// Opens the topic's partitions from `first` on.
    fn open_partitions(
        &self,
        topic: &TopicImage,
        first: usize,
        config: &TopicConfig,
    ) -> Vec<Arc<Partition>> {
        let now_ms = self.clock.now_ms();
        let opened = (first..topic.partitions.len())
            .map(|index| self.open_one(topic, index, config, now_ms))
            .collect();
        self.roles_changed.notify_one();
        opened
    }

    /// Partition `index` of `topic` as this broker serves it: its log when
    /// this broker is one of its replicas, else a remote entry. A log that
    /// cannot be opened is served as offline (KAFKA_STORAGE_ERROR) and the
    /// rest as usual, as at start-up: the change is committed, and a broker
    /// with a bad disk must not stop following the metadata.
    fn open_one(
        &self,
        topic: &TopicImage,
        index: usize,
        config: &TopicConfig,
        now_ms: i64,
    ) -> Arc<Partition> {
        let data_dir = self.config.data_dir();
        let node = self.config.node_id;
        let image = &topic.partitions[index];
        let assignment = Assignment::from_image(image);
        let index = index as i32;
        if !image.replicas.contains(&node) {
            return Arc::new(Partition::remote(
                data_dir,
                &topic.name,
                topic.topic_id,
                index,
                node,
                assignment,
            ));
        }
        let result = remove_other_incarnation(data_dir, &topic.name, index, topic.topic_id)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                open_partition(
                    &self.storage,
                    data_dir,
                    &topic.name,
                    topic.topic_id,
                    index,
                    image.leader_epoch,
                    config,
                    now_ms,
                )
                .map_err(|e| e.to_string())
            });
        let partition = result.unwrap_or_else(|e| {
            error!(topic = %topic.name, partition = index, error = %e,
                "partition cannot be opened; it answers KAFKA_STORAGE_ERROR until repaired and restarted");
            Partition::offline(
                data_dir,
                &topic.name,
                topic.topic_id,
                index,
                image.leader_epoch,
                e,
            )
        });
        // Before it is placed: a leader's first high watermark already
        // follows the rule.
        partition.set_min_insync(config.min_insync_replicas());
        Arc::new(partition.placed(node, assignment, now_ms))
    }

    /// Stops serving a deleted topic: its logs are fenced (appends,
    /// retention and cleaner passes finish or stop first), then each
    /// directory is renamed out of the way and removed.
    fn remove(&self, topic: &Topic) {
        self.topics.write().remove(&topic.name);
        let now_ms = self.clock.now_ms();
        for partition in topic.partitions.iter().filter(|p| p.is_hosted()) {
            remove_partition_dir(partition, now_ms);
        }
        self.roles_changed.notify_one();
        self.removed.lock().push(topic.name.clone());
        info!(topic = %topic.name, "deleted topic");
    }
}

impl Publisher for TopicPublisher {
    fn publish(&self, image: &MetadataImage, change: Change<'_>) {
        if let Change::Records(records) = change {
            self.note_broker_events(records);
        }
        let active = self.active.lock();
        if !*active {
            return;
        }
        match change {
            Change::Records(records) => self.publish_records(image, records),
            Change::Reset => self.reconcile_all(image, Quiet::No),
        }
        drop(active);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quiet {
    /// Start-up: the recovery report says what was opened.
    Yes,
    No,
}

/// Fences a partition's log (appends, retention and cleaner passes finish
/// or stop first), then renames its directory out of the way and removes
/// it.
fn remove_partition_dir(partition: &Partition, now_ms: i64) {
    // Led here until now (a deleted topic): acks=all produces waiting on
    // it answer NOT_LEADER_OR_FOLLOWER at once, not REQUEST_TIMED_OUT when
    // their timeout runs out.
    if partition.is_leader() {
        partition.set_assignment(
            Assignment {
                leader: -1,
                ..partition.assignment()
            },
            now_ms,
        );
    }
    partition.log().fence();
    let dir = partition.dir();
    let doomed = dir.with_file_name(format!(
        "{}.{}-delete",
        dir.file_name().unwrap_or_default().to_string_lossy(),
        partition.topic_id.simple()
    ));
    // Renaming first makes the directory invisible to a restart even if the
    // removal below is cut short.
    let removed = fs::rename(dir, &doomed).and_then(|()| fs::remove_dir_all(&doomed));
    if let Err(e) = removed {
        warn!(dir = %dir.display(), error = %e, "could not remove deleted partition; it will be removed at next start");
    }
}

/// A directory at a new partition's path that belongs to another topic id
/// is the leftover of a deleted topic of the same name: it must not be
/// served.
fn remove_other_incarnation(
    data_dir: &Path,
    topic: &str,
    index: i32,
    topic_id: Uuid,
) -> std::io::Result<()> {
    let dir = data_dir.join(Partition::dir_name(topic, index));
    if dir.exists() && !belongs_to(&dir, topic_id) {
        warn!(dir = %dir.display(), "removing stale partition directory");
        fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
