//! `vltava dev-cluster`: a local cluster in one command (what `rpk
//! container start -n 3` is for Redpanda). It starts `--nodes` combined
//! nodes as child processes of this binary (`vltava server`), each a voter
//! of one metadata quorum, with data and a log file per node under one
//! folder, prints the bootstrap string, and stops them all (SIGTERM, a
//! controlled shutdown each) on Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;

use super::fail;

/// The most nodes one command starts: a quorum of more voters only adds
/// latency, and nine already fill a laptop.
const NODES_MAX: u16 = 9;

/// How long each node may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the nodes may take to stop after SIGTERM before they are
/// killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Start a local cluster of combined nodes and stop it on Ctrl-C.
#[derive(Args, Debug)]
pub struct DevClusterArgs {
    /// How many nodes (each a broker and a metadata voter).
    #[arg(long, short = 'n', default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=NODES_MAX as i64))]
    pub nodes: u16,
    /// Where each node keeps its data and log (node-1, node-2, ...); kept
    /// between runs, so a cluster started again has its topics.
    #[arg(long, default_value = "vltava-dev-cluster", value_name = "DIR")]
    pub dir: PathBuf,
    /// Node i listens for clients on PORT + 2(i-1) and for its voters on
    /// the port after (19092/19093, 19094/19095, ...), serves its admin
    /// endpoints (console, /metrics, /health, /ready) on PORT + 2n + (i-1),
    /// after the n nodes' pairs, its schema registry on PORT + 3n + (i-1)
    /// and its REST proxy on PORT + 4n + (i-1); 0 picks free ports.
    #[arg(long, default_value_t = 19092, value_name = "PORT")]
    pub base_port: u16,
    /// Set one config on every node, as `vltava server --override` does
    /// (repeatable).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// One node's ports.
struct Ports {
    kafka: u16,
    controller: u16,
    admin: u16,
    registry: u16,
    rest: u16,
}

pub async fn run(args: DevClusterArgs) -> anyhow::Result<()> {
    for o in &args.overrides {
        if !o.contains('=') {
            return fail(format!("Error: --override {o}: expected KEY=VALUE"));
        }
    }
    let ports = match choose_ports(args.nodes, args.base_port) {
        Ok(p) => p,
        Err(e) => return fail(format!("Error: {e}")),
    };
    std::fs::create_dir_all(&args.dir)?;
    let dir = args.dir.canonicalize()?;
    let voters = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{}", i + 1, p.controller))
        .collect::<Vec<_>>()
        .join(",");
    let exe = std::env::current_exe()?;
    let mut children: Vec<(u16, Child)> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let id = i as u16 + 1;
        match spawn_node(&exe, &dir, id, p, &voters, &args.overrides) {
            Ok(child) => children.push((id, child)),
            Err(e) => {
                stop_all(&mut children);
                return fail(format!("Error: starting node {id}: {e}"));
            }
        }
    }
    // A voter serves only once a majority is up: all were started first.
    let started = Instant::now();
    for (i, p) in ports.iter().enumerate() {
        let id = i as u16 + 1;
        while std::net::TcpStream::connect(("127.0.0.1", p.kafka)).is_err() {
            let exited = children[i].1.try_wait()?;
            if exited.is_some() || started.elapsed() > START_TIMEOUT {
                stop_all(&mut children);
                return fail(format!(
                    "Error: node {id} did not start ({}); see {}",
                    match exited {
                        Some(status) => format!("it exited with {status}"),
                        None => format!("not listening after {} s", START_TIMEOUT.as_secs()),
                    },
                    log_file(&dir, id).display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let bootstrap = ports
        .iter()
        .map(|p| format!("127.0.0.1:{}", p.kafka))
        .collect::<Vec<_>>()
        .join(",");
    println!(
        "Started {} Vltava node(s), data and logs in {}:",
        args.nodes,
        dir.display()
    );
    for (i, p) in ports.iter().enumerate() {
        let id = i as u16 + 1;
        println!(
            "  node {id}: kafka 127.0.0.1:{}  controller 127.0.0.1:{}  admin http://127.0.0.1:{}  registry http://127.0.0.1:{}  rest http://127.0.0.1:{}  log {}",
            p.kafka,
            p.controller,
            p.admin,
            p.registry,
            p.rest,
            log_file(&dir, id).display()
        );
    }
    println!("Bootstrap servers: {bootstrap}");
    println!(
        "Try: vltava topics --bootstrap-server {bootstrap} --create --topic demo --partitions 3"
    );
    println!("Press Ctrl-C to stop the cluster.");
    wait_for_signal_or_exit(&mut children).await;
    stop_all(&mut children);
    println!("Stopped.");
    Ok(())
}

fn log_file(dir: &Path, id: u16) -> PathBuf {
    dir.join(format!("node-{id}")).join("server.log")
}

/// Fixed ports from `base` (checked free, so a taken one is named before
/// anything starts), or free ones for a base of 0.
fn choose_ports(nodes: u16, base: u16) -> Result<Vec<Ports>, String> {
    // Held until all are chosen, so no port is handed out twice.
    let mut held = Vec::new();
    let mut free = || -> Result<u16, String> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        held.push(listener);
        Ok(port)
    };
    let mut ports = Vec::new();
    for i in 0..nodes {
        let p = match base {
            0 => Ports {
                kafka: free()?,
                controller: free()?,
                admin: free()?,
                registry: free()?,
                rest: free()?,
            },
            base => {
                let kafka = u32::from(base) + 2 * u32::from(i);
                let admin = u32::from(base) + 2 * u32::from(nodes) + u32::from(i);
                let registry = u32::from(base) + 3 * u32::from(nodes) + u32::from(i);
                let rest = u32::from(base) + 4 * u32::from(nodes) + u32::from(i);
                if rest > u32::from(u16::MAX) {
                    return Err(format!(
                        "--base-port {base} leaves no room for {nodes} nodes below port 65535"
                    ));
                }
                Ports {
                    kafka: kafka as u16,
                    controller: kafka as u16 + 1,
                    admin: admin as u16,
                    registry: registry as u16,
                    rest: rest as u16,
                }
            }
        };
        if base != 0 {
            for port in [p.kafka, p.controller, p.admin, p.registry, p.rest] {
                if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                    return Err(format!(
                        "port {port} is taken ({e}): another dev cluster may be running; choose another --base-port (0 picks free ports)"
                    ));
                }
            }
        }
        ports.push(p);
    }
    Ok(ports)
}

fn spawn_node(
    exe: &Path,
    dir: &Path,
    id: u16,
    ports: &Ports,
    voters: &str,
    overrides: &[String],
) -> anyhow::Result<Child> {
    let node_dir = dir.join(format!("node-{id}"));
    std::fs::create_dir_all(&node_dir)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file(dir, id))?;
    let mut cmd = Command::new(exe);
    cmd.arg("server");
    let settings = [
        format!("node.id={id}"),
        "process.roles=broker,controller".to_string(),
        format!(
            "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
            ports.kafka, ports.controller
        ),
        "controller.listener.names=CONTROLLER".to_string(),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".to_string(),
        format!("controller.quorum.voters={voters}"),
        format!("log.dirs={}", node_dir.join("data").display()),
        format!("admin.listeners=http://127.0.0.1:{}", ports.admin),
        format!(
            "schema.registry.listeners=http://127.0.0.1:{}",
            ports.registry
        ),
        format!("rest.proxy.listeners=http://127.0.0.1:{}", ports.rest),
    ];
    for setting in settings.iter().chain(overrides) {
        cmd.arg("--override").arg(setting);
    }
    // Its own process group: the terminal's Ctrl-C reaches this process
    // only, which then stops the nodes one by one with SIGTERM.
    use std::os::unix::process::CommandExt;
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    Ok(cmd.spawn()?)
}

/// Returns on SIGINT, SIGTERM or SIGHUP (the terminal closed); a node that
/// exits meanwhile is reported (the others keep running, as a cluster does
/// when one node dies).
async fn wait_for_signal_or_exit(children: &mut [(u16, Child)]) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("cannot install signal handlers; stopping the cluster");
        return;
    };
    let mut reported = vec![false; children.len()];
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        for (i, (id, child)) in children.iter_mut().enumerate() {
            if reported[i] {
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                reported[i] = true;
                eprintln!("node {id} exited with {status}; the others keep running");
            }
        }
    }
}

/// Stops the nodes one at a time, last first: SIGTERM (each fences itself
/// while a majority is still up, and flushes), then its exit; a node still
/// running after the timeout is killed.
fn stop_all(children: &mut Vec<(u16, Child)>) {
    for (id, child) in children.iter_mut().rev() {
        if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    eprintln!(
                        "node {id} did not stop within {} s; killing it",
                        STOP_TIMEOUT.as_secs()
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    children.clear();
}
