//! An observer of the metadata quorum: a node that is not a voter (Kafka's
//! broker-only node, `process.roles=broker`) and follows the committed
//! metadata by fetching it from the voters, as Kafka's observers fetch the
//! metadata log. It holds no log: it starts from the leader's image and
//! applies every committed entry after it, through the same [`Publisher`]
//! as a voter, at the same indexes, so its conditional proposals and
//! waits mean what a voter's do. Proposals, heartbeats and status requests
//! go to the leader over the voters' connections.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::watch;
use vltava_meta::{MetaRecord, MetadataImage};

use crate::network::{self, Connector, FetchReply, Io};
use crate::{Change, NodeId, ProposeError, Publisher, QuorumStatus};

/// How long a fetch may take beyond the voter's long poll before the
/// connection is given up and another voter tried.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The pause before trying the next voter after one failed.
const FETCH_BACKOFF: Duration = Duration::from_millis(200);

/// An observer's settings.
#[derive(Debug, Clone)]
pub struct ObserverConfig {
    pub node_id: NodeId,
    /// The voters and their quorum addresses (`controller.quorum.voters`).
    pub voters: BTreeMap<NodeId, String>,
    /// Told of every change to the image.
    pub publisher: Option<Arc<dyn Publisher>>,
    /// How long a proposal sent to the leader may take, and this node's
    /// wait to apply it.
    pub forward_timeout: Duration,
}

/// What the observer has applied.
#[derive(Debug, Default)]
struct Applied {
    image: MetadataImage,
    last_applied: Option<u64>,
}

/// One observer: its fetch loop runs until [`Observer::shutdown`].
pub struct Observer {
    node_id: NodeId,
    voters: BTreeMap<NodeId, String>,
    connector: Arc<dyn Connector>,
    forward_timeout: Duration,
    state: Arc<RwLock<Applied>>,
    /// The leader the last fetch named.
    leader: Arc<parking_lot::Mutex<Option<NodeId>>>,
    applied: watch::Receiver<Option<u64>>,
    fetcher: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// Starts following the quorum of `config.voters` (the first fetch
    /// happens at once; [`Observer::wait_applied`] waits for it).
    pub fn start(config: ObserverConfig, connector: Arc<dyn Connector>) -> Observer {
        let state = Arc::new(RwLock::new(Applied::default()));
        let leader = Arc::new(parking_lot::Mutex::new(None));
        let (applied_tx, applied) = watch::channel(None);
        let fetcher = tokio::spawn(fetch_loop(
            config.clone(),
            connector.clone(),
            state.clone(),
            leader.clone(),
            applied_tx,
        ));
        Observer {
            node_id: config.node_id,
            voters: config.voters,
            connector,
            forward_timeout: config.forward_timeout,
            state,
            leader,
            applied,
            fetcher,
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Reads the image as of the last applied entry, without copying it.
    pub fn with_image<R>(&self, read: impl FnOnce(&MetadataImage) -> R) -> R {
        read(&self.state.read_recursive().image)
    }

    /// Reads the image with the index of the last entry applied to it.
    pub fn with_image_at<R>(&self, read: impl FnOnce(&MetadataImage, Option<u64>) -> R) -> R {
        let applied = self.state.read_recursive();
        read(&applied.image, applied.last_applied)
    }

    /// The index of the last entry applied (`None` before any).
    pub fn applied_index(&self) -> Option<u64> {
        self.state.read_recursive().last_applied
    }

    /// The leader the last fetch named.
    pub fn leader(&self) -> Option<NodeId> {
        *self.leader.lock()
    }

    /// Waits until this node has applied at least `index`, or `timeout`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let mut applied = self.applied.clone();
        tokio::time::timeout(timeout, applied.wait_for(|a| a.is_some_and(|a| a >= index)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until this node has applied anything (its first fetch).
    pub async fn wait_started(&self, timeout: Duration) -> bool {
        let mut applied = self.applied.clone();
        tokio::time::timeout(timeout, applied.wait_for(|a| a.is_some()))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn leader_address(&self) -> Result<(NodeId, String), ProposeError> {
        let leader = self
            .leader()
            .ok_or(ProposeError::NotLeader { leader: None })?;
        let addr = self
            .voters
            .get(&leader)
            .cloned()
            .ok_or(ProposeError::NotLeader { leader: None })?;
        Ok((leader, addr))
    }

    /// [`crate::Quorum::propose_if`] from an observer: always sent to the
    /// leader; answered once this node has applied the entry.
    pub async fn propose_if(
        &self,
        expected: Option<u64>,
        records: Vec<MetaRecord>,
    ) -> Result<u64, ProposeError> {
        let (leader, addr) = self.leader_address()?;
        let index = network::propose_at(
            &*self.connector,
            leader,
            &addr,
            expected,
            records,
            self.forward_timeout,
        )
        .await?;
        match self.wait_applied(index, self.forward_timeout).await {
            true => Ok(index),
            false => Err(crate::not_applied(index, self.forward_timeout)),
        }
    }

    /// A broker's heartbeat, to the leader.
    pub async fn heartbeat(&self, node_id: NodeId, epoch: i64) -> Result<(), ProposeError> {
        let (leader, addr) = self.leader_address()?;
        network::heartbeat_at(
            &*self.connector,
            leader,
            &addr,
            node_id,
            epoch,
            self.forward_timeout,
        )
        .await
    }

    /// The quorum as the leader sees it.
    pub async fn leader_status(&self) -> Result<QuorumStatus, ProposeError> {
        let (leader, addr) = self.leader_address()?;
        network::status_at(&*self.connector, leader, &addr, self.forward_timeout).await
    }

    /// Stops fetching.
    pub async fn shutdown(&self) {
        self.fetcher.abort();
    }
}

/// Fetches from the leader (any voter until one names it), applying what
/// comes back, until aborted.
async fn fetch_loop(
    config: ObserverConfig,
    connector: Arc<dyn Connector>,
    state: Arc<RwLock<Applied>>,
    leader: Arc<parking_lot::Mutex<Option<NodeId>>>,
    applied_tx: watch::Sender<Option<u64>>,
) {
    let voters: Vec<NodeId> = config.voters.keys().copied().collect();
    let mut next_voter = 0usize;
    let mut connection: Option<(NodeId, Box<dyn Io>)> = None;
    let mut unreachable_logged = false;
    loop {
        let target = leader
            .lock()
            .filter(|l| config.voters.contains_key(l))
            .unwrap_or(voters[next_voter % voters.len()]);
        if connection.as_ref().is_some_and(|(id, _)| *id != target) {
            connection = None;
        }
        let after = state.read().last_applied;
        let exchange = async {
            let mut io = match connection.take() {
                Some((_, io)) => io,
                None => connector.connect(&config.voters[&target]).await?,
            };
            let reply = network::fetch_on(&mut io, config.node_id, after).await?;
            Ok::<_, std::io::Error>((io, reply))
        };
        match tokio::time::timeout(crate::FETCH_WAIT + FETCH_TIMEOUT, exchange).await {
            Ok(Ok((io, reply))) => {
                connection = Some((target, io));
                if unreachable_logged {
                    tracing::info!(voter = target, "fetching the metadata again");
                    unreachable_logged = false;
                }
                let named = match &reply {
                    FetchReply::Entries { leader, .. } | FetchReply::Image { leader, .. } => {
                        *leader
                    }
                };
                if named != *leader.lock() {
                    if let Some(l) = named {
                        tracing::info!(leader = l, "metadata quorum leader");
                    }
                    *leader.lock() = named;
                }
                // A voter that names no leader (electing, or cut off from
                // its majority) may never have news: ask the next one.
                if named.is_none() {
                    next_voter = next_voter.wrapping_add(1);
                }
                // The publisher does file work: off the runtime's worker.
                let applied = crate::log_store::blocking(|| {
                    apply(&state, config.publisher.as_deref(), reply)
                });
                if applied.is_some() {
                    applied_tx.send_replace(applied);
                }
            }
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_string(),
                };
                if !unreachable_logged {
                    tracing::warn!(voter = target, %error, "cannot fetch the metadata from this voter; trying the others");
                    unreachable_logged = true;
                }
                // The leader it named may be gone: ask the voters in turn.
                *leader.lock() = None;
                next_voter = next_voter.wrapping_add(1);
                tokio::time::sleep(FETCH_BACKOFF).await;
            }
        }
    }
}

/// Applies a fetch's answer; returns the last applied index when it moved.
fn apply(
    state: &RwLock<Applied>,
    publisher: Option<&dyn Publisher>,
    reply: FetchReply,
) -> Option<u64> {
    let publish = |image: &MetadataImage, change: Change<'_>| {
        if let Some(p) = publisher {
            p.publish(image, change);
        }
    };
    match reply {
        FetchReply::Entries { entries, .. } => {
            let mut moved = None;
            for (index, records) in entries {
                let mut applied = state.write();
                // Entries come in order from where this node asked;
                // anything else (a voter restarted behind) is skipped, and a
                // gap ends this answer (the next fetch asks again).
                if applied.last_applied.is_some_and(|l| index <= l) {
                    continue;
                }
                if index != applied.last_applied.map_or(0, |l| l + 1) {
                    tracing::warn!(index, applied = ?applied.last_applied, "a fetched entry does not follow the last applied one; fetching again");
                    break;
                }
                for record in &records {
                    applied.image.apply(record);
                }
                applied.last_applied = Some(index);
                moved = Some(index);
                if !records.is_empty() {
                    let applied = parking_lot::RwLockWriteGuard::downgrade(applied);
                    publish(&applied.image, Change::Records(&records));
                }
            }
            moved
        }
        FetchReply::Image {
            applied: at,
            records,
            ..
        } => {
            let mut applied = state.write();
            if applied.last_applied.is_some() && at <= applied.last_applied {
                return None;
            }
            let mut image = MetadataImage::default();
            for record in &records {
                image.apply(record);
            }
            applied.image = image;
            applied.last_applied = at;
            let applied = parking_lot::RwLockWriteGuard::downgrade(applied);
            publish(&applied.image, Change::Reset);
            at
        }
    }
}
