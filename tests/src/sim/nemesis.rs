//! The seeded fault schedule both simulations share: partitions, one-way
//! cuts, message loss, latency, held links and crashes of the simulated
//! hosts `node-{id}`, applied as the simulation steps; and, when asked
//! for, slow disks ([`SlowDisk`]) drawn from a schedule of their own, so
//! a seed's network and crash faults are the same with or without them.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vltava_log::storage::{DiskWait, FaultPlan};
use vltava_quorum::NodeId;

use super::{host_name, ticks, LATENCY_MAX};

/// What the schedule tells the simulation about.
pub trait World {
    /// Simulated time now.
    fn now(&self) -> Duration;
    /// Node `id` crashed: its handles are dropped.
    fn crashed(&mut self, id: NodeId);
    fn trace(&mut self, line: String);
}

/// The seeded fault schedule, applied as the simulation steps.
pub struct Nemesis {
    rng: StdRng,
    ids: Vec<NodeId>,
    /// Ticks until the next action.
    wait: u64,
    /// What is faulty now (healed at the next action).
    current: Option<Fault>,
    pub faults: usize,
    pub crashes: usize,
    /// The nodes' disks, when the simulation slows them (empty: never).
    disks: BTreeMap<NodeId, Arc<SlowDisk>>,
    /// Draws the slow disks, apart from `rng`.
    disk_rng: StdRng,
    /// The disk slow now, if any (healed at the next action).
    slow_disk: Option<NodeId>,
    pub slow_disks: usize,
}

/// A node's disk as the simulation slows it: a queue, as a disk serves
/// one flush after another. Each write job waits for those before it, each
/// taking `latency` of simulated time; at zero latency nothing waits.
#[derive(Debug, Default)]
pub struct SlowDisk {
    state: Mutex<DiskState>,
}

#[derive(Debug, Default)]
struct DiskState {
    latency: Duration,
    /// When the jobs queued so far are done (simulated time).
    busy_until: Duration,
    /// Jobs that waited.
    delayed: usize,
}

impl SlowDisk {
    fn set_latency(&self, latency: Duration) {
        let mut state = self.state.lock().expect("not poisoned");
        state.latency = latency;
    }

    /// The seam the broker and the quorum await before a write job.
    pub fn wait(self: &Arc<Self>) -> DiskWait {
        let disk = self.clone();
        DiskWait::new(move || disk.turn())
    }

    /// How long a job queued now waits, its own time included.
    fn turn(&self) -> Duration {
        let mut state = self.state.lock().expect("not poisoned");
        if state.latency.is_zero() {
            return Duration::ZERO;
        }
        let now = turmoil::sim_elapsed().unwrap_or_default();
        let done = state.busy_until.max(now) + state.latency;
        state.busy_until = done;
        state.delayed += 1;
        done - now
    }

    fn delayed(&self) -> usize {
        self.state.lock().expect("not poisoned").delayed
    }
}

#[derive(Debug, Clone)]
enum Fault {
    Partition(Vec<NodeId>, Vec<NodeId>),
    OneWay(NodeId, NodeId),
    Loss(f64),
    Slow(Duration),
    Hold(NodeId, NodeId),
    Crash(Vec<NodeId>),
}

/// The first fault comes after this (the quorum elects first).
const FIRST_FAULT_AFTER: Duration = Duration::from_secs(2);
/// A slow disk makes each write job wait this many milliseconds (drawn
/// from the range), behind the jobs queued before it.
const DISK_LATENCY_MS: std::ops::Range<u64> = 5..250;

/// Each period (a fault, or quiet) lasts from this many milliseconds
/// up to the next (drawn in milliseconds, so a seed's schedule stays
/// what it was).
const PERIOD_MS: std::ops::Range<u64> = 1_000..8_000;

impl Nemesis {
    pub fn new(seed: u64, ids: Vec<NodeId>) -> Nemesis {
        Nemesis {
            rng: StdRng::seed_from_u64(seed ^ 0x5eed_f417),
            ids,
            wait: ticks(FIRST_FAULT_AFTER),
            current: None,
            faults: 0,
            crashes: 0,
            disks: BTreeMap::new(),
            disk_rng: StdRng::seed_from_u64(seed ^ 0xd15c_51e0),
            slow_disk: None,
            slow_disks: 0,
        }
    }

    /// Slows these disks now and then: in about a third of the periods
    /// one node's disk, whatever else the period brings.
    pub fn with_slow_disks(mut self, disks: BTreeMap<NodeId, Arc<SlowDisk>>) -> Nemesis {
        self.disks = disks;
        self
    }

    /// Write jobs a slow disk made wait, on every node.
    pub fn disk_jobs_delayed(&self) -> usize {
        self.disks.values().map(|d| d.delayed()).sum()
    }

    fn maybe_slow_a_disk(&mut self, shared: &Rc<RefCell<impl World>>) {
        if self.disks.is_empty() || self.disk_rng.random_range(0..3) > 0 {
            return;
        }
        let ids: Vec<NodeId> = self.disks.keys().copied().collect();
        let id = ids[self.disk_rng.random_range(0..ids.len())];
        let latency = Duration::from_millis(self.disk_rng.random_range(DISK_LATENCY_MS));
        self.disks[&id].set_latency(latency);
        self.slow_disk = Some(id);
        self.slow_disks += 1;
        let mut s = shared.borrow_mut();
        let at = s.now();
        s.trace(format!(
            "{at:?} slow disk on node {id}: {latency:?} a write"
        ));
    }

    pub fn maybe_act(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        shared: &Rc<RefCell<impl World>>,
        plans: &BTreeMap<NodeId, Arc<FaultPlan>>,
    ) -> anyhow::Result<()> {
        if self.wait > 0 {
            self.wait -= 1;
            return Ok(());
        }
        self.heal_all(sim, shared);
        self.maybe_slow_a_disk(shared);
        // A quarter of the periods are quiet.
        if self.rng.random_range(0..4) > 0 {
            let fault = self.pick();
            self.apply(&fault, sim, shared, plans)?;
            self.current = Some(fault);
            self.faults += 1;
        }
        self.wait = ticks(Duration::from_millis(self.rng.random_range(PERIOD_MS)));
        Ok(())
    }

    fn shuffled(&mut self) -> Vec<NodeId> {
        let mut ids = self.ids.clone();
        for i in (1..ids.len()).rev() {
            ids.swap(i, self.rng.random_range(0..=i));
        }
        ids
    }

    fn pick(&mut self) -> Fault {
        let ids = self.shuffled();
        let minority = (ids.len() - 1) / 2;
        match self.rng.random_range(0..8) {
            0 => Fault::Partition(vec![ids[0]], ids[1..].to_vec()),
            1 => {
                let cut = self.rng.random_range(1..=minority);
                Fault::Partition(ids[..cut].to_vec(), ids[cut..].to_vec())
            }
            2 => Fault::OneWay(ids[0], ids[1]),
            3 => Fault::Loss(self.rng.random_range(0.05..0.3)),
            4 => Fault::Slow(Duration::from_millis(self.rng.random_range(50..400))),
            5 => Fault::Hold(ids[0], ids[1]),
            // A minority crashes; now and then every node at once (a
            // power cut of the whole cluster).
            6 if self.rng.random_range(0..5) == 0 => Fault::Crash(ids.clone()),
            _ => {
                let n = self.rng.random_range(1..=minority);
                Fault::Crash(ids[..n].to_vec())
            }
        }
    }

    fn apply(
        &mut self,
        fault: &Fault,
        sim: &mut turmoil::Sim<'_>,
        shared: &Rc<RefCell<impl World>>,
        plans: &BTreeMap<NodeId, Arc<FaultPlan>>,
    ) -> anyhow::Result<()> {
        let names = |ids: &[NodeId]| ids.iter().map(|&i| host_name(i)).collect::<Vec<_>>();
        match fault {
            Fault::Partition(a, b) => {
                for x in names(a) {
                    for y in names(b) {
                        sim.partition(x.as_str(), y.as_str());
                    }
                }
            }
            Fault::OneWay(from, to) => {
                sim.partition_oneway(host_name(*from).as_str(), host_name(*to).as_str())
            }
            Fault::Loss(rate) => sim.set_fail_rate(*rate),
            Fault::Slow(latency) => sim.set_max_message_latency(*latency),
            Fault::Hold(a, b) => sim.hold(host_name(*a).as_str(), host_name(*b).as_str()),
            Fault::Crash(ids) => {
                for &id in ids {
                    sim.crash(host_name(id).as_str());
                    shared.borrow_mut().crashed(id);
                    // Whatever no fsync covered is gone.
                    plans[&id].power_cut()?;
                    self.crashes += 1;
                }
            }
        }
        let mut s = shared.borrow_mut();
        let at = s.now();
        s.trace(format!("{at:?} fault {fault:?}"));
        Ok(())
    }

    pub fn heal_all(&mut self, sim: &mut turmoil::Sim<'_>, shared: &Rc<RefCell<impl World>>) {
        if let Some(id) = self.slow_disk.take() {
            self.disks[&id].set_latency(Duration::ZERO);
            let mut s = shared.borrow_mut();
            let at = s.now();
            s.trace(format!("{at:?} disk of node {id} healed"));
        }
        let Some(fault) = self.current.take() else {
            return;
        };
        let all: Vec<String> = self.ids.iter().map(|&i| host_name(i)).collect();
        match fault {
            Fault::Crash(ids) => {
                for id in ids {
                    sim.bounce(host_name(id).as_str());
                }
            }
            Fault::Loss(_) => sim.set_fail_rate(0.0),
            Fault::Slow(_) => sim.set_max_message_latency(LATENCY_MAX),
            _ => {
                for a in &all {
                    for b in &all {
                        if a != b {
                            sim.repair(a.as_str(), b.as_str());
                            sim.release(a.as_str(), b.as_str());
                        }
                    }
                }
            }
        }
        let mut s = shared.borrow_mut();
        let at = s.now();
        s.trace(format!("{at:?} heal"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_disk_queues_its_jobs_and_a_healed_one_does_not_wait() {
        let disk = Arc::new(SlowDisk::default());
        let wait = disk.wait();
        assert_eq!(wait.next(), Duration::ZERO);
        disk.set_latency(Duration::from_millis(100));
        // Outside a simulation the clock stands at zero: each job waits
        // for those queued before it.
        assert_eq!(wait.next(), Duration::from_millis(100));
        assert_eq!(wait.next(), Duration::from_millis(200));
        assert_eq!(wait.next(), Duration::from_millis(300));
        disk.set_latency(Duration::ZERO);
        assert_eq!(wait.next(), Duration::ZERO);
        assert_eq!(disk.delayed(), 3);
    }
}
