//! Test harness for Vltava's integration tests (the tests themselves live in
//! `tests/tests/*.rs`).
//!
//! It owns three things:
//!
//! * [`TestBroker`]: starts the real `vltava` binary on a free loopback port
//!   with its data in a fresh temporary directory, stops it with SIGTERM
//!   (asserting a clean exit) or SIGKILL, and restarts it on the same port and
//!   directory. The broker's stderr goes to `broker.stderr` in that directory
//!   and is printed when a test panics, so a failing test shows what the
//!   broker said.
//! * [`raw::RawClient`]: a small blocking Kafka client that sends requests
//!   built from the `kafka-protocol` crate's types (or arbitrary bytes) and
//!   reads response frames, for protocol-level and malformed-input tests.
//! * [`vltava`] and [`vltava_tool`]: run a command-line tool to completion
//!   under [`TOOL_TIMEOUT`], with [`stdout_ok`] and [`text`] to read it.
//!
//! The binary is `$VLTAVA_BIN` if set, else `target/<profile>/vltava` next to
//! the test executable (`target/<profile>/deps/<test>`); build it first with
//! `cargo build -p vltava-cli`.
//!
//! Nothing here sleeps as synchronisation: waits poll a condition with a
//! deadline ([`wait_until`]).

pub mod cluster;
pub mod fault;
pub mod raw;
pub mod sim;

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a broker may take to start listening or to exit after SIGTERM.
pub const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a broker may take to exit after SIGTERM.
pub const BROKER_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `cond` every 20 ms until it returns true or `timeout` passes.
/// Returns whether the condition became true.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.1 GET to `addr` (HOST:PORT): the status, the content type
/// and the body. Enough for the admin server, whose answers carry a
/// length and close when asked.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String, String)> {
    let answer = http_request(addr, "GET", path, &[], "")?;
    let content_type = answer
        .header("content-type")
        .unwrap_or_default()
        .to_string();
    Ok((answer.status, content_type, answer.body))
}

/// POSTs `form` (`application/x-www-form-urlencoded`) with `headers` added.
pub fn http_post(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    form: &str,
) -> std::io::Result<HttpAnswer> {
    let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    http_request(addr, "POST", path, &all, form)
}

/// An HTTP answer: the status, the headers (names lowercase) and the body.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `headers` added (a `Host` among them replaces
/// the address).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<HttpAnswer> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    write!(stream, "{head}\r\n{body}")?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let bad = |what: &str| std::io::Error::other(format!("{what} in {raw:?}"));
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            Some((name.to_ascii_lowercase(), value.trim().to_string()))
        })
        .collect();
    Ok(HttpAnswer {
        status,
        headers,
        body: body.to_string(),
    })
}

/// A port that was free a moment ago, below the kernel's ephemeral range.
///
/// Port 0 would hand out an ephemeral port, and a test that stops a broker
/// and starts it again on the same port then races every outgoing
/// connection on the machine for it: one took it as its source port in a
/// full-suite run (a rolling restart failed with EADDRINUSE). Below the
/// ephemeral range only listeners compete, so ports are drawn at random
/// there and checked by binding them.
pub fn free_port() -> u16 {
    /// Ports this process handed out: a broker stopped for a restart does
    /// not hold its port, and the bind check alone would hand it out again.
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let (low, _) = ephemeral_range();
    if low > PORTS_BELOW_EPHEMERAL_MIN {
        for _ in 0..1000 {
            let port = rand::random_range(PORTS_BELOW_EPHEMERAL_MIN..low);
            if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                handed_out.insert(port);
                return port;
            }
        }
    }
    // No room below the ephemeral range, or none of it free: the kernel's
    // choice.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local_addr").port();
    handed_out.insert(port);
    port
}

/// The lowest port [`free_port`] draws (above the well-known and most
/// registered service ports that a machine may run).
const PORTS_BELOW_EPHEMERAL_MIN: u16 = 20_000;

/// The kernel's ephemeral port range (Linux's default when unreadable).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or((32_768, 60_999))
}

/// Path of the `vltava` binary under test.
pub fn vltava_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("VLTAVA_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/<test> -> target/debug/vltava; a binary of this
    // package (target/debug/vltava-fault) sits beside it.
    let mut dir = exe.parent().expect("executable has a directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().expect("deps lives in target/<profile>");
    }
    dir.join("vltava")
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// A running (or stopped) `vltava server` process owned by one test.
///
/// Dropping it kills the process (SIGKILL) and removes its data directory; if
/// the thread is panicking, the broker's stderr is printed first.
pub struct TestBroker {
    child: Option<Child>,
    port: u16,
    overrides: Vec<(String, String)>,
    stderr_path: PathBuf,
    starts: u32,
    /// Set once the stderr tail went into a panic message, so Drop does not
    /// print it a second time.
    stderr_shown: std::cell::Cell<bool>,
    // Declared last so it is removed after the process is gone.
    dir: tempfile::TempDir,
}

impl TestBroker {
    /// Starts a broker with `node.id=1`, a loopback listener on a free port,
    /// `log.dirs` in a fresh temporary directory and the given extra
    /// `--override key=value` pairs; returns once the port accepts
    /// connections.
    pub fn start(overrides: &[(&str, &str)]) -> TestBroker {
        TestBroker::start_at(free_port(), overrides)
    }

    /// [`TestBroker::start`] with the loopback listener on `port`, for
    /// tests whose overrides (more listeners, advertised addresses) must
    /// name it.
    pub fn start_at(port: u16, overrides: &[(&str, &str)]) -> TestBroker {
        let mut broker = TestBroker::launch_at(port, overrides);
        broker.wait_ready();
        broker
    }

    /// [`TestBroker::start_at`] without waiting for the port: a voter of a
    /// cluster does not serve until a majority of its voters is up, so a
    /// cluster's nodes are all launched before any is waited for
    /// ([`TestBroker::wait_started`]).
    pub fn launch_at(port: u16, overrides: &[(&str, &str)]) -> TestBroker {
        let dir = tempfile::Builder::new()
            .prefix("vltava-it-")
            .tempdir()
            .expect("create tempdir");
        let stderr_path = dir.path().join("broker.stderr");
        let mut broker = TestBroker {
            child: None,
            port,
            overrides: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            stderr_path,
            starts: 0,
            stderr_shown: std::cell::Cell::new(false),
            dir,
        };
        broker.spawn();
        broker
    }

    /// Waits until a launched broker accepts connections (panicking with its
    /// stderr if it exits or takes longer than the start timeout).
    pub fn wait_started(&mut self) {
        self.wait_ready();
    }

    /// Starts the stopped broker again and waits for it to exit by itself
    /// (it refused to start), returning its status; panics if it is still
    /// running after `timeout`.
    pub fn restart_expecting_exit(&mut self, timeout: Duration) -> ExitStatus {
        assert!(!self.is_running(), "the broker is running");
        self.spawn();
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("just spawned");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the broker did not exit within {timeout:?}\n{}",
                    self.stderr_banner()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The listener's socket address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The listener's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's `log.dirs`.
    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The OS process id, if the broker is running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// Panics (printing stderr) unless the process is still running.
    pub fn assert_running(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!(
                    "broker exited unexpectedly with {status}\n{}",
                    self.stderr_banner()
                );
            }
        } else {
            panic!("broker is not started");
        }
    }

    /// Resident set size of the broker process in KiB (from /proc).
    pub fn rss_kib(&self) -> Option<u64> {
        self.proc_status_kib("VmRSS:")
    }

    /// The largest resident set size the broker process has had, in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.proc_status_kib("VmHWM:")
    }

    fn proc_status_kib(&self, field: &str) -> Option<u64> {
        let pid = self.pid()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find(|l| l.starts_with(field))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// Everything the broker has written to stderr so far (all runs).
    pub fn stderr_log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.stderr_path) {
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    }

    /// Sends SIGTERM, waits for the process to exit and asserts exit status 0.
    pub fn stop_sigterm(&mut self) {
        let status = self.signal_and_wait("-TERM");
        assert!(
            status.success(),
            "broker did not exit 0 after SIGTERM: {status}\n{}",
            self.stderr_banner()
        );
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill_sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL on Unix
            let _ = child.wait();
        }
    }

    /// [`TestBroker::restart`] without waiting for the port: for tests that
    /// watch the start itself.
    pub fn launch_again(&mut self) {
        assert!(!self.is_running(), "the broker is running");
        self.child = None;
        self.spawn();
    }

    /// Starts the broker again with the same port, data directory and
    /// overrides. The previous process must have been stopped.
    pub fn restart(&mut self) {
        assert!(
            !self.is_running(),
            "restart() called while the broker is running"
        );
        self.child = None;
        self.spawn();
        self.wait_ready();
    }

    fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().expect("broker is not running");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill {signal} failed");
        let deadline = Instant::now() + BROKER_STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "broker did not exit within {BROKER_STOP_TIMEOUT:?} of {signal}\n{}",
                    self.stderr_banner()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn(&mut self) {
        let bin = vltava_bin();
        assert!(
            bin.exists(),
            "vltava binary not found at {} (build it with `cargo build -p vltava-cli` or set VLTAVA_BIN)",
            bin.display()
        );
        std::fs::create_dir_all(self.log_dir()).expect("create log dir");
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .expect("open stderr file");
        self.starts += 1;
        use std::io::Write;
        let mut marker = stderr.try_clone().expect("clone stderr file");
        let _ = writeln!(marker, "===== vltava-tests: start #{} =====", self.starts);

        let mut cmd = Command::new(&bin);
        cmd.arg("server")
            .arg("--override")
            .arg("node.id=1")
            .arg("--override")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{}", self.port))
            .arg("--override")
            .arg(format!("log.dirs={}", self.log_dir().display()))
            // Off unless a test asks for it: parallel brokers would all
            // want the default port.
            .arg("--override")
            .arg("admin.listeners=")
            .arg("--override")
            .arg("schema.registry.listeners=")
            .arg("--override")
            .arg("rest.proxy.listeners=");
        for (k, v) in &self.overrides {
            cmd.arg("--override").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(stderr.try_clone().expect("clone stderr file")))
            .stderr(Stdio::from(stderr));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        self.child = Some(child);
    }

    fn wait_ready(&mut self) {
        let addr = self.addr();
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "broker exited during startup with {status}\n{}",
                    self.stderr_banner()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "broker did not listen on {addr} within {BROKER_START_TIMEOUT:?}\n{}",
                    self.stderr_banner()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr_banner(&self) -> String {
        const TAIL_BYTES: usize = 32 * 1024;
        self.stderr_shown.set(true);
        let log = self.stderr_log();
        let tail = if log.len() > TAIL_BYTES {
            let mut start = log.len() - TAIL_BYTES;
            while !log.is_char_boundary(start) {
                start += 1;
            }
            &log[start..]
        } else {
            &log[..]
        };
        format!(
            "----- broker stderr ({}) -----\n{tail}\n----- end broker stderr -----",
            self.stderr_path.display()
        )
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.stderr_shown.get() {
            eprintln!("{}", self.stderr_banner());
        }
        self.kill_sigkill();
    }
}

/// How long one run of a command-line tool may take before it is killed and
/// the test fails: far more than any tool needs against a local broker.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `cmd` with `stdin` as its input and returns its output, killing it
/// and failing the test if it has not exited within `timeout`. A tool that
/// exits before reading its input (it refused its arguments) is fine.
pub fn run_tool(mut cmd: Command, stdin: &str, timeout: Duration) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tool");
    let mut input = child.stdin.take().expect("piped stdin");
    match input.write_all(stdin.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("write tool stdin: {e}"),
        _ => drop(input),
    }
    // Drain the pipes on threads so a chatty tool never blocks on them.
    let stdout = read_on_thread(child.stdout.take().expect("piped stdout"));
    let stderr = read_on_thread(child.stderr.take().expect("piped stderr"));
    let mut status = None;
    let exited = wait_until(timeout, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{cmd:?} did not exit within {timeout:?}");
    }
    Output {
        status: status.expect("exited"),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Runs `vltava <args>` with `stdin` as input, under [`TOOL_TIMEOUT`].
/// `RUST_LOG` and `VLTAVA_BOOTSTRAP` are removed so the environment cannot
/// change what a test sees.
pub fn vltava(args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(vltava_bin());
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("VLTAVA_BOOTSTRAP");
    run_tool(cmd, stdin, TOOL_TIMEOUT)
}

/// Runs `vltava <tool> --bootstrap-server <bootstrap> <args>` with no input.
pub fn vltava_tool(tool: &str, bootstrap: &str, args: &[&str]) -> Output {
    let mut all = vec![tool, "--bootstrap-server", bootstrap];
    all.extend_from_slice(args);
    vltava(&all, "")
}

/// Bytes as text, invalid UTF-8 replaced.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that a tool exited 0 and returns its stdout; `what` (usually the
/// arguments) and stderr go into the failure message.
pub fn stdout_ok(what: impl std::fmt::Debug, out: &Output) -> String {
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "{what:?} failed with {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        text(&out.stderr)
    );
    stdout
}

fn read_on_thread(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}
