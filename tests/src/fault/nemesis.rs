//! The faults, a seeded schedule of them, and the nodes they act on.

use std::fmt;
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustix::process::{kill_process, Pid, Signal};

use super::net::Net;
use crate::vltava_bin;

/// One fault, held for a step of the schedule and then healed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL; restarted when healed.
    Kill(Target),
    /// SIGSTOP (a paused process: a leader that stops mid-request);
    /// SIGCONT when healed.
    Pause(Target),
    /// The node exchanges no packet with any other node (clients still
    /// reach it, so they may keep talking to a deposed leader).
    Isolate(usize),
    /// Two sides that exchange no packet (majority / minority).
    Split(Vec<usize>, Vec<usize>),
    /// Jepsen's bridge: two halves that cannot reach each other, and one
    /// node that both reach.
    Bridge(Vec<usize>, usize, Vec<usize>),
    /// Packets from `from` stop reaching `to`; the other way still works.
    OneWay { from: usize, to: usize },
    /// This share (percent) of packets into the node is dropped.
    Loss(usize, u32),
    /// The node's outgoing packets are delayed (netem) or squeezed through
    /// a slow link.
    Slow(usize),
    /// Every fsync of the node's partition logs fails; healing restarts it
    /// (a log that saw a failed fsync refuses writes until then).
    FsyncFail(usize),
    /// The node's partition logs cannot grow (ENOSPC).
    DiskFull(usize),
}

/// Which node a process fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Node(usize),
    /// The leader of this partition when the fault starts.
    LeaderOf(i32),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(n) => write!(f, "node {n}"),
            Target::LeaderOf(p) => write!(f, "the leader of partition {p}"),
        }
    }
}

impl Fault {
    /// The kind, for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill(_) => "kill",
            Fault::Pause(_) => "pause",
            Fault::Isolate(_) => "isolate",
            Fault::Split(..) => "split",
            Fault::Bridge(..) => "bridge",
            Fault::OneWay { .. } => "one-way",
            Fault::Loss(..) => "loss",
            Fault::Slow(_) => "slow-net",
            Fault::FsyncFail(_) => "fsync-fail",
            Fault::DiskFull(_) => "disk-full",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill(t) => write!(f, "SIGKILL {t}, restart at heal"),
            Fault::Pause(t) => write!(f, "SIGSTOP {t}, SIGCONT at heal"),
            Fault::Isolate(n) => write!(f, "isolate node {n} from the other nodes"),
            Fault::Split(a, b) => write!(f, "partition {a:?} | {b:?}"),
            Fault::Bridge(a, m, b) => write!(f, "bridge {a:?} - {m} - {b:?}"),
            Fault::OneWay { from, to } => write!(f, "drop packets from node {from} to node {to}"),
            Fault::Loss(n, p) => write!(f, "drop {p}% of packets into node {n}"),
            Fault::Slow(n) => write!(f, "slow network out of node {n}"),
            Fault::FsyncFail(n) => write!(f, "fail fsyncs on node {n}, restart at heal"),
            Fault::DiskFull(n) => write!(f, "disk full on node {n}"),
        }
    }
}

/// One step of the schedule: a fault (or none: a quiet period) held for
/// `duration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub fault: Option<Fault>,
    pub duration: Duration,
}

/// Share of steps without a fault.
pub const QUIET_STEPS_PERCENT: u32 = 25;

/// The seeded schedule for `total` on `nodes` nodes (3 or more) and
/// `partitions` partitions: the same seed gives the same schedule.
pub fn schedule(seed: u64, nodes: usize, partitions: i32, total: Duration) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::new();
    let mut elapsed = Duration::ZERO;
    while elapsed < total {
        let quiet = rng.random_range(0..100) < QUIET_STEPS_PERCENT;
        let duration = Duration::from_millis(rng.random_range(3_000..9_000));
        let fault = (!quiet).then(|| pick(&mut rng, nodes, partitions));
        elapsed += duration;
        steps.push(Step { fault, duration });
    }
    steps
}

fn pick(rng: &mut StdRng, nodes: usize, partitions: i32) -> Fault {
    let node = |rng: &mut StdRng| rng.random_range(1..=nodes);
    let target = |rng: &mut StdRng| match rng.random_bool(0.5) {
        true => Target::LeaderOf(rng.random_range(0..partitions)),
        false => Target::Node(rng.random_range(1..=nodes)),
    };
    let mut shuffled: Vec<usize> = (1..=nodes).collect();
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, rng.random_range(0..=i));
    }
    match rng.random_range(0..10) {
        0 => Fault::Kill(target(rng)),
        1 => Fault::Pause(target(rng)),
        2 => Fault::Isolate(node(rng)),
        3 => {
            let minority = (nodes - 1) / 2;
            let (a, b) = shuffled.split_at(minority.max(1));
            Fault::Split(a.to_vec(), b.to_vec())
        }
        4 => {
            let middle = shuffled[0];
            let rest = &shuffled[1..];
            let (a, b) = rest.split_at(rest.len() / 2);
            Fault::Bridge(a.to_vec(), middle, b.to_vec())
        }
        5 => Fault::OneWay {
            from: shuffled[0],
            to: shuffled[1],
        },
        6 => Fault::Loss(node(rng), rng.random_range(5..=30)),
        7 => Fault::Slow(node(rng)),
        8 => Fault::FsyncFail(node(rng)),
        _ => Fault::DiskFull(node(rng)),
    }
}

/// How long a started node may take to accept connections.
pub const NODE_START_TIMEOUT: Duration = Duration::from_secs(60);

/// One `vltava server` process inside its namespace.
pub struct Node {
    pub id: usize,
    namespace: String,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    overrides: Vec<String>,
    child: Option<Child>,
    paused: bool,
    pub starts: u32,
}

impl Node {
    pub fn new(id: usize, net: &Net, root: &std::path::Path, overrides: Vec<String>) -> Node {
        Node {
            id,
            namespace: net.namespace(id),
            addr: SocketAddr::from((net.ip(id as u8), 9092)),
            dir: root.join(format!("node{id}")),
            overrides,
            child: None,
            paused: false,
            starts: 0,
        }
    }

    /// `log.dirs`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The file its storage faults are switched through.
    pub fn fault_control(&self) -> PathBuf {
        self.dir.join("storage-fault")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("broker.log")
    }

    pub fn start(&mut self) -> Result<()> {
        std::fs::create_dir_all(self.data_dir())?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        self.starts += 1;
        use std::io::Write;
        writeln!(&log, "===== fault harness: start #{} =====", self.starts)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.namespace])
            .arg(vltava_bin())
            .arg("server");
        for o in &self.overrides {
            cmd.arg("--override").arg(o);
        }
        cmd.arg("--override")
            .arg(format!("log.dirs={}", self.data_dir().display()))
            .arg("--override")
            .arg(format!(
                "unsafe.testing.storage.fault.file={}",
                self.fault_control().display()
            ))
            .env("VLTAVA_UNSAFE_TESTING", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        // `ip netns exec` execs the command: this child is the broker.
        self.child = Some(cmd.spawn().context("starting vltava in its namespace")?);
        self.paused = false;
        Ok(())
    }

    /// Waits until the listener accepts connections.
    pub fn wait_listening(&mut self) -> Result<()> {
        let deadline = Instant::now() + NODE_START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "node {} exited with {status}:\n{}",
                        self.id,
                        self.log_tail()
                    );
                }
            }
            if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "node {} did not listen within {NODE_START_TIMEOUT:?}:\n{}",
                    self.id,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pid(&self) -> Option<Pid> {
        self.child
            .as_ref()
            .and_then(|c| Pid::from_raw(c.id() as i32))
    }

    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        self.paused = false;
        Ok(())
    }

    pub fn pause(&mut self) -> Result<()> {
        if let Some(pid) = self.pid() {
            kill_process(pid, Signal::STOP)?;
            self.paused = true;
        }
        Ok(())
    }

    pub fn resume(&mut self) -> Result<()> {
        if let (Some(pid), true) = (self.pid(), self.paused) {
            kill_process(pid, Signal::CONT)?;
        }
        self.paused = false;
        Ok(())
    }

    /// Started by the harness, not killed by it, and exited: a crash.
    pub fn exited_by_itself(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| !matches!(c.try_wait(), Ok(None)))
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Switches the node's storage faults (the control file it polls).
    pub fn storage_fault(&self, fault: &str) -> Result<()> {
        std::fs::write(self.fault_control(), fault)?;
        Ok(())
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.resume();
        let _ = self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_schedule() {
        let a = schedule(7, 3, 4, Duration::from_secs(300));
        let b = schedule(7, 3, 4, Duration::from_secs(300));
        let c = schedule(8, 3, 4, Duration::from_secs(300));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let total: Duration = a.iter().map(|s| s.duration).sum();
        assert!(total >= Duration::from_secs(300));
        let quiet = a.iter().filter(|s| s.fault.is_none()).count();
        // About a quarter, over ~50 steps.
        assert!((5..=25).contains(&quiet), "{quiet} quiet of {}", a.len());
        for step in &a {
            match &step.fault {
                Some(Fault::Split(x, y)) => {
                    assert_eq!(x.len() + y.len(), 3);
                    assert!(x.len() < y.len(), "the first side is the minority");
                }
                Some(Fault::Bridge(x, m, y)) => {
                    assert_eq!(x.len() + y.len() + 1, 3);
                    assert!(!x.contains(m) && !y.contains(m));
                }
                Some(Fault::OneWay { from, to }) => assert_ne!(from, to),
                _ => {}
            }
        }
    }
}
