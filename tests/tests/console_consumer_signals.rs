//! `vltava console-consumer --group` stopped by SIGTERM or SIGINT (issue 17):
//! at any point it prints Kafka's "Processed a total of N messages", exits 0,
//! commits what it printed and leaves the group, so the next member of the
//! group does not wait out a session timeout for a phantom.
//!
//! The consumer runs as a child process against the real broker; the
//! committed offsets and the group's members are read back with raw
//! OffsetFetch and DescribeGroups requests.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{DescribeGroupsRequest, GroupId, OffsetFetchRequest};
use kafka_protocol::protocol::StrBytes;
use vltava_tests::raw::{topic_name, RawClient};
use vltava_tests::{stdout_ok, text, vltava, vltava_bin, wait_until, TestBroker};

/// How long one consumer may take to join and print what was produced.
const CONSUME_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a signalled consumer may take to commit, leave and exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// The group's session timeout is 45 s; a member that did not leave makes
/// the next one wait about that long. A clean leave lets it in after the
/// broker's 3 s initial rebalance delay; 20 s leaves room for a loaded CI
/// machine and is still far below the 45 s a phantom member would cost.
const NEXT_MEMBER_FIRST_RECORD_MAX: Duration = Duration::from_secs(20);
const RECORDS: usize = 10;

/// A tool process whose stdout and stderr are drained by threads.
struct Tool {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    drains: Vec<JoinHandle<()>>,
}

impl Tool {
    fn spawn(args: &[&str], input: Option<&str>) -> Tool {
        let mut child = Command::new(vltava_bin())
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vltava");
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(input) = input {
            stdin.write_all(input.as_bytes()).expect("write stdin");
        }
        drop(stdin);
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let drains = vec![
            drain(child.stdout.take().expect("stdout"), stdout.clone()),
            drain(child.stderr.take().expect("stderr"), stderr.clone()),
        ];
        Tool {
            child,
            stdout,
            stderr,
            drains,
        }
    }

    fn stdout(&self) -> String {
        text(&self.stdout.lock().unwrap())
    }

    fn stderr(&self) -> String {
        text(&self.stderr.lock().unwrap())
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Whether the process has installed its own SIGINT and SIGTERM
    /// handlers (bits 2 and 15 of `SigCgt` in /proc/<pid>/status): the
    /// earliest moment a signal can be told from a kill.
    fn handles_stop_signals(&self) -> bool {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .unwrap_or(0);
        let mask = (1 << (2 - 1)) | (1 << (15 - 1));
        caught & mask == mask
    }

    /// Waits for the exit (killing the process if it does not come within
    /// `timeout`) and returns the status, stdout and stderr.
    fn finish(mut self, timeout: Duration) -> (ExitStatus, String, String) {
        let mut status = None;
        let exited = wait_until(timeout, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!(
                "vltava did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
        }
        for d in self.drains.drain(..) {
            d.join().expect("drain thread");
        }
        (status.expect("exited"), self.stdout(), self.stderr())
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(mut from: impl Read + Send + 'static, to: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                return;
            }
            to.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

fn run_ok(args: &[&str], input: &str) -> String {
    stdout_ok(args, &vltava(args, input))
}

/// A one-partition topic holding `v0` .. `v{RECORDS-1}`.
fn topic_with_records(broker: &TestBroker, topic: &str) -> String {
    let bs = broker.bootstrap();
    run_ok(
        &[
            "topics",
            "--bootstrap-server",
            &bs,
            "--create",
            "--topic",
            topic,
            "--partitions",
            "1",
        ],
        "",
    );
    let lines: String = (0..RECORDS).map(|i| format!("v{i}\n")).collect();
    run_ok(
        &[
            "console-producer",
            "--bootstrap-server",
            &bs,
            "--topic",
            topic,
        ],
        &lines,
    );
    lines
}

fn consumer(broker: &TestBroker, topic: &str, group: &str) -> Tool {
    Tool::spawn(
        &[
            "console-consumer",
            "--bootstrap-server",
            &broker.bootstrap(),
            "--topic",
            topic,
            "--group",
            group,
            "--from-beginning",
        ],
        None,
    )
}

/// The group's committed offset for partition 0 of `topic` (-1 for none).
fn committed_offset(broker: &TestBroker, group: &str, topic: &str) -> i64 {
    let mut raw = RawClient::connect(broker.addr()).expect("connect");
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![0])]));
    let response = raw.request(&request, 5).expect("OffsetFetch v5");
    assert_eq!(response.error_code, 0, "OffsetFetch error");
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0, "OffsetFetch partition error");
    partition.committed_offset
}

/// The group's state and member count, as DescribeGroups reports them.
fn group_state(broker: &TestBroker, group: &str) -> (String, usize) {
    let mut raw = RawClient::connect(broker.addr()).expect("connect");
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let response = raw.request(&request, 4).expect("DescribeGroups v4");
    let group = &response.groups[0];
    assert_eq!(group.error_code, 0, "DescribeGroups error");
    (group.group_state.to_string(), group.members.len())
}

/// Consumes everything, is stopped by `signal` while it long-polls for more,
/// and must report, commit and leave cleanly. Before the fix, the commit on
/// exit read the cancelled Fetch's response and failed with "correlation id
/// N in response to N+1".
fn stop_after_consuming(signal: &str) {
    let broker = TestBroker::start(&[]);
    let expected = topic_with_records(&broker, "t");
    let tool = consumer(&broker, "t", "g");
    let printed_all = wait_until(CONSUME_TIMEOUT, || tool.stdout() == expected);
    assert!(
        printed_all,
        "consumer printed {:?}\nstderr: {}",
        tool.stdout(),
        tool.stderr()
    );
    tool.signal(signal);
    let (status, out, err) = tool.finish(EXIT_TIMEOUT);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}\nstderr: {err}"
    );
    assert_eq!(out, expected);
    assert!(!err.contains("Error"), "stderr: {err}");
    assert_eq!(err, format!("Processed a total of {RECORDS} messages\n"));
    assert_eq!(committed_offset(&broker, "g", "t"), RECORDS as i64);
    assert_eq!(group_state(&broker, "g"), ("Empty".to_string(), 0));
}

#[test]
fn sigterm_after_consuming_commits_and_leaves() {
    stop_after_consuming("-TERM");
}

#[test]
fn sigint_after_consuming_commits_and_leaves() {
    stop_after_consuming("-INT");
}

/// A consumer stopped at `stop_when` before it joined reports 0 messages,
/// exits 0 and leaves nothing behind: the next consumer of the group gets
/// its first record within [`NEXT_MEMBER_FIRST_RECORD_MAX`].
fn stop_before_joining(stop_when: impl Fn(&TestBroker, &Tool) -> bool) {
    let broker = TestBroker::start(&[]);
    topic_with_records(&broker, "t");
    let early = consumer(&broker, "t", "g");
    assert!(
        wait_until(CONSUME_TIMEOUT, || stop_when(&broker, &early)),
        "the consumer never reached the moment to stop it\nstderr: {}",
        early.stderr()
    );
    early.signal("-TERM");
    let (status, out, err) = early.finish(EXIT_TIMEOUT);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}\nstderr: {err}"
    );
    assert_eq!(out, "");
    assert_eq!(err, "Processed a total of 0 messages\n");
    assert_eq!(group_state(&broker, "g").1, 0, "a member stayed behind");

    let started = Instant::now();
    let next = consumer(&broker, "t", "g");
    let got_first = wait_until(NEXT_MEMBER_FIRST_RECORD_MAX, || {
        next.stdout().starts_with("v0\n")
    });
    assert!(
        got_first,
        "the next member printed {:?} after {:?}\nstderr: {}",
        next.stdout(),
        started.elapsed(),
        next.stderr()
    );
    next.signal("-TERM");
    let (status, _, err) = next.finish(EXIT_TIMEOUT);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}\nstderr: {err}"
    );
    assert!(!err.contains("Error"), "stderr: {err}");
}

/// Signalled as soon as the process can tell a signal from a kill: while it
/// connects, before it has a member id.
#[test]
fn signal_right_after_start_reports_and_exits_0() {
    stop_before_joining(|_, tool| tool.handles_stop_signals());
}

/// Signalled while its JoinGroup is parked in the broker's initial
/// rebalance delay: it has a member id, so it must send LeaveGroup or the
/// group waits for it.
#[test]
fn signal_while_joining_leaves_the_group() {
    stop_before_joining(|broker, _| group_state(broker, "g") == ("PreparingRebalance".into(), 1));
}
