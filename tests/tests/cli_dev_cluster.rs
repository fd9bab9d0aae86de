//! `vltava dev-cluster`: two nodes on free ports under one folder with an
//! override applied to each, the bootstrap string it prints reaching a
//! cluster of both, Ctrl-C (SIGINT) stopping them all with exit 0 and
//! their data left in place; a taken port and a bad override refused
//! before anything starts. Every flag is exercised: --nodes, --dir,
//! --base-port, --override.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::MetadataRequest;
use vltava_tests::raw::{topic_name, RawClient};
use vltava_tests::{text, vltava, vltava_bin};

const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn two_nodes_start_serve_one_cluster_and_stop_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let cluster_dir = dir.path().join("dev");
    let mut child = Command::new(vltava_bin())
        .args(["dev-cluster", "--nodes", "2", "--base-port", "0", "--dir"])
        .arg(&cluster_dir)
        .args(["--override", "num.partitions=4"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read what it prints until it is ready, on a thread, under a deadline.
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut printed = Vec::new();
    loop {
        let left = DEADLINE.saturating_sub(started.elapsed());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("dev-cluster did not get ready: {printed:?}"));
        let done = line == "Press Ctrl-C to stop the cluster.";
        printed.push(line);
        if done {
            break;
        }
    }
    let canonical = cluster_dir.canonicalize().unwrap();
    assert_eq!(
        printed[0],
        format!(
            "Started 2 Vltava node(s), data and logs in {}:",
            canonical.display()
        )
    );
    let bootstrap = printed
        .iter()
        .find_map(|l| l.strip_prefix("Bootstrap servers: "))
        .unwrap()
        .to_string();
    let addrs: Vec<std::net::SocketAddr> =
        bootstrap.split(',').map(|a| a.parse().unwrap()).collect();
    assert_eq!(addrs.len(), 2);
    for (i, addr) in addrs.iter().enumerate() {
        assert!(
            printed[i + 1].starts_with(&format!(
                "  node {}: kafka {addr}  controller 127.0.0.1:",
                i + 1
            )),
            "{printed:?}"
        );
    }
    // Both nodes are one cluster; the override reached each: an
    // auto-created topic has num.partitions=4, spread over the two.
    let mut client = RawClient::connect(addrs[1]).unwrap();
    let started = Instant::now();
    let resp = loop {
        let resp = client
            .request(
                &MetadataRequest::default().with_topics(Some(vec![
                    kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(topic_name("auto"))),
                ])),
                12,
            )
            .unwrap();
        if resp.topics[0].error_code == 0 && resp.brokers.len() == 2 {
            break resp;
        }
        assert!(started.elapsed() < DEADLINE, "{resp:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Each node's admin server answers where the listing says; the active
    // controllers add up to one.
    let controllers: f64 = printed[1..3]
        .iter()
        .map(|line| {
            let admin = line
                .split("admin http://")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("no admin address in {line:?}"));
            let (status, _, body) = vltava_tests::http_get(admin, "/ready").unwrap();
            assert_eq!((status, body.as_str()), (200, "ready\n"), "{admin}");
            // And its schema registry, where the listing says.
            let registry = line
                .split("registry http://")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("no registry address in {line:?}"));
            let (status, _, body) = vltava_tests::http_get(registry, "/schemas/types").unwrap();
            assert_eq!(
                (status, body.as_str()),
                (200, "[\"JSON\",\"PROTOBUF\",\"AVRO\"]"),
                "{registry}"
            );
            // And its REST proxy.
            let rest = line
                .split("rest http://")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("no REST proxy address in {line:?}"));
            let (status, _, body) = vltava_tests::http_get(rest, "/v3/clusters").unwrap();
            assert_eq!(status, 200, "{rest}: {body}");
            assert!(body.contains("\"kind\":\"KafkaClusterList\""), "{body}");
            let (_, _, metrics) = vltava_tests::http_get(admin, "/metrics").unwrap();
            metrics
                .lines()
                .find_map(|l| {
                    l.strip_prefix("kafka_controller_kafkacontroller_activecontrollercount ")
                })
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{metrics}"))
        })
        .sum();
    assert_eq!(controllers, 1.0);
    let brokers: Vec<(i32, i32)> = resp.brokers.iter().map(|b| (b.node_id.0, b.port)).collect();
    assert_eq!(
        brokers,
        vec![
            (1, i32::from(addrs[0].port())),
            (2, i32::from(addrs[1].port()))
        ]
    );
    let mut leaders: Vec<i32> = resp.topics[0]
        .partitions
        .iter()
        .map(|p| p.leader_id.0)
        .collect();
    leaders.sort_unstable();
    assert_eq!(leaders, [1, 1, 2, 2]);
    // Ctrl-C: every node stops, the command exits 0, the data stays.
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < DEADLINE, "dev-cluster did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let rest: Vec<String> = lines.try_iter().collect();
    assert_eq!(rest.last().map(String::as_str), Some("Stopped."));
    for node in 1..=2 {
        let node_dir = canonical.join(format!("node-{node}"));
        assert!(node_dir.join("data/meta.properties").exists());
        let log = std::fs::read_to_string(node_dir.join("server.log")).unwrap();
        assert!(log.contains("Vltava broker stopped"), "node {node}: {log}");
        assert!(
            std::net::TcpStream::connect(addrs[node - 1]).is_err(),
            "node {node} still listens"
        );
    }
}

#[test]
fn a_taken_port_or_a_bad_override_is_refused_before_anything_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().join("dev");
    let out = vltava(
        &[
            "dev-cluster",
            "--base-port",
            &port.to_string(),
            "--dir",
            dir_arg.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with(&format!("Error: port {port} is taken")),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir_arg.exists(), "nothing was started or written");
    let out = vltava(&["dev-cluster", "--override", "num.partitions"], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error: --override num.partitions: expected KEY=VALUE\n"
    );
    let out = vltava(&["dev-cluster", "--nodes", "10"], "");
    assert_eq!(out.status.code(), Some(2), "clap refuses more than 9 nodes");
}
