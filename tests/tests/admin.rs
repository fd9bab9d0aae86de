//! The admin HTTP server (`admin.listeners`) on the real binary: `/metrics`
//! after a known workload (exact counters, gauges and lag, and
//! `promtool check metrics` clean), `/health` and `/ready` while a large
//! log recovers, the start-up banner, and a taken port naming the setting.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::records::Compression;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use vltava_tests::cluster::Cluster;
use vltava_tests::raw::{encode_batch, ProducerStamp, RawClient, TestRecord};
use vltava_tests::{free_port, http_get, run_tool, vltava_bin, wait_until, TestBroker};

const TOPIC: &str = "metered";

fn admin_broker(extra: &[(&str, &str)]) -> (TestBroker, String) {
    let admin = format!("127.0.0.1:{}", free_port());
    let listeners = format!("http://{admin}");
    let mut overrides = vec![("admin.listeners", listeners.as_str())];
    overrides.extend_from_slice(extra);
    (TestBroker::start(&overrides), admin)
}

/// `name{labels} value` lines of a scrape, as (series, value).
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn value(text: &str, series: &str) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| v)
}

fn scrape(admin: &str) -> String {
    let (status, content_type, body) = http_get(admin, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    body
}

#[test]
fn metrics_count_a_known_workload_exactly_and_promtool_accepts_them() {
    let (broker, admin) = admin_broker(&[]);
    let mut raw = RawClient::connect(broker.addr()).unwrap();
    let created = raw.create_topic(TOPIC, 2, &[], false).unwrap();
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");

    // Five batches to partition 0 (3 records each), two to partition 1
    // (one record each), with keys and headers: their bytes are known.
    let mut bytes = [0usize; 2];
    let mut produce_requests = 0;
    for (partition, batches, per_batch) in [(0, 5, 3), (1, 2, 1)] {
        for b in 0..batches {
            let records: Vec<TestRecord> = (0..per_batch)
                .map(|r| {
                    let mut record = TestRecord::kv(&format!("key-{b}-{r}"), &format!("v{b}{r}"));
                    record.headers = vec![("h".into(), Some(Bytes::from_static(b"1")))];
                    record
                })
                .collect();
            let batch = encode_batch(&records, ProducerStamp::NONE, Compression::None);
            bytes[partition as usize] += batch.len();
            let answer = raw.produce(TOPIC, partition, batch, -1).unwrap();
            assert_eq!(answer.error_code, 0, "{answer:?}");
            produce_requests += 1;
        }
    }
    // One fetch of each partition from the start: every byte goes out once.
    for partition in 0..2 {
        let data = raw.fetch(TOPIC, partition, 0).unwrap();
        assert_eq!(data.records.unwrap().len(), bytes[partition as usize]);
    }

    // A group commits offset 4 of partition 0's 15 records.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "lagging")
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(TOPIC, 0, Offset::Offset(4))
        .unwrap();
    consumer.commit(&offsets, CommitMode::Sync).unwrap();
    drop(consumer);

    let text = scrape(&admin);
    let produced = |p: usize| bytes[p] as f64;
    let topic = format!("topic=\"{TOPIC}\"");
    assert_eq!(
        value(
            &text,
            &format!("kafka_server_brokertopicmetrics_messagesin_total{{{topic}}}")
        ),
        Some(17.0)
    );
    assert_eq!(
        value(
            &text,
            &format!("kafka_server_brokertopicmetrics_bytesin_total{{{topic}}}")
        ),
        Some(produced(0) + produced(1))
    );
    assert_eq!(
        value(
            &text,
            &format!("kafka_server_brokertopicmetrics_bytesout_total{{{topic}}}")
        ),
        Some(produced(0) + produced(1))
    );
    for p in 0..2 {
        assert_eq!(
            value(
                &text,
                &format!("kafka_log_log_size{{partition=\"{p}\",{topic}}}")
            ),
            Some(produced(p)),
            "{text}"
        );
    }
    assert_eq!(
        value(
            &text,
            "kafka_network_requestmetrics_requests_total{request=\"Produce\"}"
        ),
        Some(produce_requests as f64)
    );
    assert_eq!(
        value(
            &text,
            "kafka_network_requestmetrics_totaltime_seconds_count{request=\"Produce\"}"
        ),
        Some(produce_requests as f64)
    );
    assert_eq!(
        value(
            &text,
            "kafka_network_requestmetrics_requests_total{request=\"Fetch\"}"
        ),
        Some(2.0)
    );
    // Lag is the high watermark (15) minus the committed offset (4).
    assert_eq!(
        value(
            &text,
            &format!(
                "kafka_consumergroup_lag{{consumergroup=\"lagging\",partition=\"0\",{topic}}}"
            )
        ),
        Some(11.0),
        "{text}"
    );
    // The topic's 2 partitions and __consumer_offsets' 50, all led here.
    for (series, want) in [
        ("kafka_server_replicamanager_partitioncount", 52.0),
        ("kafka_server_replicamanager_leadercount", 52.0),
        ("kafka_server_replicamanager_underreplicatedpartitions", 0.0),
        (
            "kafka_controller_kafkacontroller_activecontrollercount",
            1.0,
        ),
        (
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            0.0,
        ),
        ("kafka_server_replicamanager_isrshrinks_total", 0.0),
        ("vltava_metrics_partition_series_omitted", 0.0),
    ] {
        assert_eq!(value(&text, series), Some(want), "{series}");
    }
    assert!(value(&text, "process_resident_memory_bytes").unwrap() > 0.0);
    assert!(value(&text, "process_open_fds").unwrap() > 0.0);
    // The raw client is the one Kafka connection left.
    assert!(
        wait_until(Duration::from_secs(10), || value(
            &scrape(&admin),
            "kafka_server_socketservermetrics_connections{listener=\"PLAINTEXT\"}"
        ) == Some(1.0)),
        "{}",
        scrape(&admin)
    );
    promtool_accepts(&text);
    documented_metrics_are_served(&text);
}

/// The metric names in `text`: words starting with one of our prefixes.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| {
            ["kafka_", "vltava_", "process_"]
                .iter()
                .any(|p| w.starts_with(p))
        })
        .map(|w| w.trim_end_matches("_bucket").to_string())
        .collect()
}

/// docs/operations.md lists exactly the families served, and every
/// metric the Grafana dashboard queries is one of them.
fn documented_metrics_are_served(text: &str) {
    let served: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect();
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    // Names in backticks (the prose mentions kafka_exporter).
    let operations = std::fs::read_to_string(docs.join("operations.md")).unwrap();
    let quoted: Vec<&str> = operations.split('`').skip(1).step_by(2).collect();
    let listed = metric_names(&quoted.join(" "));
    assert_eq!(listed, served, "docs/operations.md against a scrape");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(docs.join("grafana/vltava.json")).unwrap())
            .unwrap();
    let queried: BTreeSet<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .flat_map(|t| metric_names(t["expr"].as_str().unwrap()))
        .collect();
    assert!(queried.len() > 15, "{queried:?}");
    let missing: Vec<&String> = queried.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries {missing:?}, not served"
    );
}

/// `promtool check metrics` (Debian's prometheus package, which the test
/// command installs) finds nothing to say about the text.
fn promtool_accepts(text: &str) {
    let Ok(promtool) = which("promtool") else {
        panic!("promtool is missing: apt-get install prometheus (the README's test command does)");
    };
    let mut cmd = Command::new(promtool);
    cmd.args(["check", "metrics"]);
    let out = run_tool(cmd, text, Duration::from_secs(60));
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}

fn which(tool: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(tool))
        .find(|path| path.is_file())
        .ok_or(())
}

#[test]
fn ready_waits_for_the_recovery_of_a_large_log_while_health_answers() {
    // A segment a batch, 2,000 of them, cut off by SIGKILL: the next
    // start opens each and checks the last before the broker serves.
    let (mut broker, admin) = admin_broker(&[("log.segment.bytes", "4096")]);
    let mut raw = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(raw.create_topic_code("big", 1).unwrap(), 0);
    let value = "x".repeat(900);
    for b in 0..2_000 {
        let records: Vec<TestRecord> = (0..8)
            .map(|r| TestRecord::kv(&format!("{b}-{r}"), &value))
            .collect();
        let batch = encode_batch(&records, ProducerStamp::NONE, Compression::None);
        assert_eq!(raw.produce("big", 0, batch, 1).unwrap().error_code, 0);
    }
    drop(raw);
    let (status, _, body) = http_get(&admin, "/ready").unwrap();
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    broker.kill_sigkill();

    broker.launch_again();
    let started = Instant::now();
    let mut answers = Vec::new();
    // Polled every millisecond: the window is a few hundred of them.
    let deadline = started + Duration::from_secs(120);
    let ready = loop {
        if let Ok((health, _, _)) = http_get(&admin, "/health") {
            assert_eq!(health, 200);
            let (status, _, body) = http_get(&admin, "/ready").unwrap();
            if answers.last() != Some(&(status, body.clone())) {
                answers.push((status, body));
            }
            if status == 200 {
                break true;
            }
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(
        ready,
        "not ready after {:?}: {answers:?}",
        started.elapsed()
    );
    println!(
        "ready {:?} after the restart: {answers:?}",
        started.elapsed()
    );
    assert_eq!(
        answers.first().map(|(s, b)| (*s, b.as_str())),
        Some((
            503,
            "starting: recovering logs and catching up with the metadata quorum\n"
        )),
        "{answers:?}"
    );
    // Ready means the Kafka listener takes requests.
    let mut raw = RawClient::connect(broker.addr()).unwrap();
    let end = raw.list_offset("big", 0, -1).unwrap();
    assert_eq!(end.offset, 16_000);
    let (status, _, _) = http_get(&admin, "/metrics").unwrap();
    assert_eq!(status, 200);
}

#[test]
fn the_banner_names_the_listeners_and_a_taken_admin_port_names_the_setting() {
    let registry = format!("127.0.0.1:{}", free_port());
    let registry_url = format!("http://{registry}");
    let (broker, admin) = admin_broker(&[("schema.registry.listeners", registry_url.as_str())]);
    let log = broker.stderr_log();
    assert!(
        log.lines()
            .any(|l| l.starts_with("Vltava ") && l.contains(" is up: node 1, cluster ")),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "  Kafka:    PLAINTEXT://127.0.0.1:{}\n",
            broker.port()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "  Admin:    http://{admin} (console, /metrics, /health, /ready)\n"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("  Registry: http://{registry}\n")),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "  Try:      vltava console-producer --bootstrap-server 127.0.0.1:{} --topic demo\n",
            broker.port()
        )),
        "{log}"
    );
    let off = TestBroker::start(&[]);
    assert!(
        off.stderr_log()
            .contains("  Admin:    off (admin.listeners is empty)\n"),
        "{}",
        off.stderr_log()
    );
    assert!(
        off.stderr_log()
            .contains("  REST:     off (rest.proxy.listeners is empty)\n"),
        "{}",
        off.stderr_log()
    );

    // A second broker asking for a taken HTTP port exits and says which
    // setting to change: the admin server's, the registry's (both held by
    // the first broker), the REST proxy's (held by the test).
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let rest = held.local_addr().unwrap().to_string();
    for (setting, address) in [
        ("admin.listeners", admin.as_str()),
        ("schema.registry.listeners", registry.as_str()),
        ("rest.proxy.listeners", rest.as_str()),
    ] {
        let stderr = refused_http_port(setting, address);
        assert!(
            stderr.contains(&format!("{setting}: cannot listen on {address}"))
                && stderr.contains(&format!("set {setting} to another http://HOST:PORT")),
            "{stderr}"
        );
    }
    drop(held);
}

/// The stderr of a broker started with only `setting` on `address` (the
/// other HTTP servers off), which must fail to start.
fn refused_http_port(setting: &str, address: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(vltava_bin());
    cmd.arg("server")
        .arg("--override")
        .arg(format!("listeners=PLAINTEXT://127.0.0.1:{}", free_port()))
        .arg("--override")
        .arg(format!("log.dirs={}", dir.path().display()));
    for other in [
        "admin.listeners",
        "schema.registry.listeners",
        "rest.proxy.listeners",
    ] {
        let value = if other == setting {
            format!("http://{address}")
        } else {
            String::new()
        };
        cmd.arg("--override").arg(format!("{other}={value}"));
    }
    cmd.env_remove("RUST_LOG");
    let out = run_tool(cmd, "", Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    stderr
}

/// The gauge or counter `series` on each node's admin server.
fn on_each(cluster: &Cluster, nodes: &[usize], series: &str) -> Vec<Option<f64>> {
    nodes
        .iter()
        .map(|&i| value(&scrape(&cluster.admin[i]), series))
        .collect()
}

fn signal(broker: &TestBroker, signal: &str) {
    let pid = broker.pid().expect("running").to_string();
    let status = Command::new("kill").args([signal, &pid]).status().unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// On three nodes, the cluster gauges move as Kafka's do: a paused follower
/// is shrunk out of its leader's ISR (one shrink, one under-replicated
/// partition on the leader), a partition whose only replica is fenced is
/// offline on the active controller, and the follower's return expands
/// the ISR again. Exactly one node is the active controller throughout.
#[test]
fn cluster_gauges_follow_a_paused_follower_and_an_offline_partition() {
    let mut cluster = Cluster::start_with(
        3,
        &[
            ("replica.lag.time.max.ms", "1000"),
            ("broker.session.timeout.ms", "4000"),
            ("broker.heartbeat.interval.ms", "500"),
        ],
    );
    let all = [0, 1, 2];
    let controllers = |cluster: &Cluster, nodes: &[usize]| -> f64 {
        on_each(
            cluster,
            nodes,
            "kafka_controller_kafkacontroller_activecontrollercount",
        )
        .into_iter()
        .map(|v| v.unwrap())
        .sum()
    };
    // The roles are chosen around the active controller: pausing it would
    // stall the leader's ISR change until a new controller is elected, and
    // the fencing that follows would shrink the ISR first (a controller's
    // change, which Kafka does not count as the leader's shrink).
    let mut controller = None;
    assert!(wait_until(Duration::from_secs(60), || {
        controller = all.into_iter().find(|&i| {
            on_each(
                &cluster,
                &[i],
                "kafka_controller_kafkacontroller_activecontrollercount",
            ) == [Some(1.0)]
        });
        controller.is_some()
    }));
    let controller = controller.unwrap();
    let mut others = all.into_iter().filter(|&i| i != controller);
    let (leader, follower) = (others.next().unwrap(), others.next().unwrap());
    let id = |i: usize| i as i32 + 1;
    cluster.create_topic_on("pair", &[id(leader), id(follower)], &[]);
    cluster.create_topic_on("alone", &[id(follower)], &[]);
    let in_sync = |cluster: &Cluster| {
        on_each(
            cluster,
            &[leader],
            "kafka_server_replicamanager_underreplicatedpartitions",
        ) == [Some(0.0)]
    };
    assert!(wait_until(Duration::from_secs(60), || in_sync(&cluster)));
    assert_eq!(controllers(&cluster, &all), 1.0);

    // The follower stops answering: the leader of "pair" shrinks it out.
    signal(&cluster.nodes[follower], "-STOP");
    let shrunk = wait_until(Duration::from_secs(60), || {
        on_each(
            &cluster,
            &[leader],
            "kafka_server_replicamanager_isrshrinks_total",
        ) == [Some(1.0)]
    });
    assert!(shrunk, "{}", scrape(&cluster.admin[leader]));
    assert_eq!(
        on_each(
            &cluster,
            &[leader],
            "kafka_server_replicamanager_underreplicatedpartitions"
        ),
        [Some(1.0)]
    );
    // Once the follower is fenced, "alone" has no leader: the active
    // controller reports it.
    let running = [leader, controller];
    let offline = wait_until(Duration::from_secs(60), || {
        on_each(
            &cluster,
            &running,
            "kafka_controller_kafkacontroller_offlinepartitionscount",
        )
        .into_iter()
        .map(|v| v.unwrap())
        .sum::<f64>()
            == 1.0
    });
    assert!(
        offline,
        "{}\n{}",
        scrape(&cluster.admin[leader]),
        scrape(&cluster.admin[controller])
    );
    assert_eq!(controllers(&cluster, &running), 1.0);

    // Back: the ISR expands and nothing is under-replicated or offline.
    signal(&cluster.nodes[follower], "-CONT");
    let healed = wait_until(Duration::from_secs(60), || {
        on_each(
            &cluster,
            &[leader],
            "kafka_server_replicamanager_isrexpands_total",
        ) == [Some(1.0)]
            && in_sync(&cluster)
            && on_each(
                &cluster,
                &all,
                "kafka_controller_kafkacontroller_offlinepartitionscount",
            ) == [Some(0.0); 3]
    });
    assert!(healed, "{}", scrape(&cluster.admin[leader]));
    assert_eq!(controllers(&cluster, &all), 1.0);
    cluster.nodes[follower].assert_running();
}

/// The console pages long lists: 100 topics a page, 500 partitions a page,
/// each row once across the pages, and a page past the end shows the last.
#[test]
fn the_console_pages_topics_and_partitions() {
    let (broker, admin) = admin_broker(&[]);
    let mut raw = RawClient::connect(broker.addr()).unwrap();
    for t in 0..101 {
        assert_eq!(raw.create_topic_code(&format!("t{t:03}"), 1).unwrap(), 0);
    }
    assert_eq!(raw.create_topic_code("wide", 501).unwrap(), 0);
    let get = |path: &str| {
        let (status, content_type, body) = http_get(&admin, path).unwrap();
        assert_eq!(
            (status, content_type.as_str()),
            (200, "text/html; charset=utf-8"),
            "{path}"
        );
        body
    };
    let topic_rows = |page: &str| page.matches("<td><a href=\"/topics/").count();
    let first = get("/topics");
    assert!(
        first.contains("page 1 of 2") && first.contains("102 topics"),
        "{first}"
    );
    assert_eq!(topic_rows(&first), 100);
    let second = get("/topics?page=2");
    assert!(second.contains("page 2 of 2"), "{second}");
    assert_eq!(topic_rows(&second), 2);
    assert!(
        second.contains(">t100<") && second.contains(">wide<"),
        "{second}"
    );
    assert_eq!(topic_rows(&get("/topics?page=9")), 2);
    let partition_rows = |page: &str| {
        page.split("<tr>")
            .filter(|row| row.starts_with("<td class=\"num\">"))
            .count()
    };
    let wide = get("/topics/wide");
    assert!(
        wide.contains("501 partitions") && wide.contains("page 1 of 2"),
        "{wide}"
    );
    assert_eq!(partition_rows(&wide), 500);
    assert_eq!(partition_rows(&get("/topics/wide?page=2")), 1);
    let (status, _, body) = http_get(&admin, "/topics/none").unwrap();
    assert_eq!(status, 404, "{body}");
}

/// The text of each cell of each row of the table with `id` in a console
/// page, tags dropped and entities `&lt;`, `&gt;`, `&quot;`, `&amp;`
/// decoded.
fn table(page: &str, id: &str) -> Vec<Vec<String>> {
    let start = page
        .find(&format!("<table id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no table {id} in {page}"));
    let end = start + page[start..].find("</table>").unwrap();
    page[start..end]
        .split("<tr>")
        .skip(2)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let cell = &cell[cell.find('>').unwrap() + 1..];
                    let mut text = String::new();
                    let mut in_tag = false;
                    for c in cell.chars() {
                        match c {
                            '<' => in_tag = true,
                            '>' => in_tag = false,
                            c if !in_tag => text.push(c),
                            _ => {}
                        }
                    }
                    text.replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&quot;", "\"")
                        .replace("&amp;", "&")
                })
                .collect()
        })
        .collect()
}

/// POSTs a console form: (status, body).
fn post(admin: &str, path: &str, headers: &[(&str, &str)], form: &str) -> (u16, String) {
    let answer = vltava_tests::http_post(admin, path, headers, form).unwrap();
    (answer.status, answer.body)
}

fn get_ok(admin: &str, path: &str) -> String {
    let (status, _, body) = http_get(admin, path).unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// `admin.console.read.only=true`: every page shows, no form does, and
/// every write route answers 403 and changes nothing. A writable console
/// refuses a form posted from another origin the same way.
#[test]
fn a_read_only_console_changes_nothing_and_cross_site_posts_are_refused() {
    let (broker, admin) = admin_broker(&[("admin.console.read.only", "true")]);
    let mut raw = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(raw.create_topic_code("kept", 2).unwrap(), 0);
    let batch = encode_batch(
        &[TestRecord::kv("k", "v")],
        ProducerStamp::NONE,
        Compression::None,
    );
    assert_eq!(raw.produce("kept", 0, batch, -1).unwrap().error_code, 0);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "idle")
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("kept", 0, Offset::Offset(1))
        .unwrap();
    consumer.commit(&offsets, CommitMode::Sync).unwrap();
    drop(consumer);

    for path in [
        "/",
        "/topics",
        "/topics/kept",
        "/topics/kept/messages",
        "/groups",
        "/groups/idle",
    ] {
        let page = get_ok(&admin, path);
        for form in ["method=\"post\"", "/new-topic", "/produce"] {
            assert!(!page.contains(form), "{path} shows {form}: {page}");
        }
    }
    let writes = [
        ("/new-topic", "name=made&partitions=1&confirm=yes"),
        ("/topics/kept/partitions", "count=3&confirm=yes"),
        ("/topics/kept/delete", "typed=kept&confirm=yes"),
        (
            "/topics/kept/produce",
            "partition=0&key=a&value=b&confirm=yes",
        ),
        ("/groups/idle/reset", "plan=kept:0:0&confirm=yes"),
        ("/groups/idle/delete", "confirm=yes"),
    ];
    for (path, form) in writes {
        let (status, body) = post(&admin, path, &[], form);
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("admin.console.read.only=true"), "{body}");
    }
    let (status, _, _) = http_get(&admin, "/new-topic").unwrap();
    assert_eq!(status, 403);
    // Nothing changed: no new topic, two partitions, one record, offset 1.
    let topics = table(&get_ok(&admin, "/topics"), "topics");
    assert_eq!(
        topics,
        [
            ["__consumer_offsets", "50", "1", "0"],
            ["kept", "2", "1", "0"]
        ]
    );
    let partitions = table(&get_ok(&admin, "/topics/kept"), "partitions");
    assert_eq!(
        partitions
            .iter()
            .map(|r| r[..7].to_vec())
            .collect::<Vec<_>>(),
        [
            ["0", "1", "1", "1", "0", "1", "1"],
            ["1", "1", "1", "1", "0", "0", "0"]
        ]
    );
    let group = table(&get_ok(&admin, "/groups/idle"), "offsets");
    assert_eq!(group, [["kept", "0", "1", "1", "0", ""]]);
    drop(broker);

    // Writable, but posted from another site: refused, nothing made.
    let (broker, admin) = admin_broker(&[]);
    for headers in [
        vec![("Origin", "http://evil.example")],
        vec![("Sec-Fetch-Site", "cross-site")],
    ] {
        let (status, body) = post(
            &admin,
            "/new-topic",
            &headers,
            "name=forged&partitions=1&confirm=yes",
        );
        assert_eq!(status, 403, "{body}");
    }
    let same = format!("http://{admin}");
    let (status, body) = post(
        &admin,
        "/new-topic",
        &[("Origin", same.as_str())],
        "name=made&partitions=2&confirm=yes",
    );
    assert_eq!(status, 303, "{body}");
    let topics = table(&get_ok(&admin, "/topics"), "topics");
    assert_eq!(topics, [["made", "2", "1", "0"]]);
    drop(broker);
}

/// Any node's console reads and writes the whole cluster: messages of a
/// partition held on another node, that partition's offsets on the topic
/// page, a record produced to it, a group's lag, and a topic created
/// through a node that is not the controller.
#[test]
fn every_nodes_console_browses_and_writes_the_whole_cluster() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let cluster = Cluster::start(3);
    cluster.create_topic_on("far", &[3], &[]);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.node(1).bootstrap())
        .set("acks", "all")
        .create()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for i in 0..4 {
            let (key, value) = (format!("k{i}"), format!("{{\"n\":{i}}}"));
            let headers = OwnedHeaders::new().insert(Header {
                key: "trace",
                value: Some(&format!("t-{i}")),
            });
            let delivery = producer
                .send(
                    FutureRecord::to("far")
                        .key(&key)
                        .payload(&value)
                        .headers(headers),
                    Duration::from_secs(30),
                )
                .await
                .unwrap_or_else(|(e, _)| panic!("delivery of {key}: {e}"));
            assert_eq!((delivery.partition, delivery.offset), (0, i));
        }
    });
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.node(2).bootstrap())
        .set("group.id", "remote-lag")
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("far", 0, Offset::Offset(1))
        .unwrap();
    consumer.commit(&offsets, CommitMode::Sync).unwrap();
    drop(consumer);

    let node1 = &cluster.admin[0];
    let far = table(&get_ok(node1, "/topics/far"), "partitions");
    assert_eq!(
        far,
        [["0", "3", "3", "3", "0", "4", "held on brokers 3"]],
        "log start and high watermark from the leader"
    );
    let page = get_ok(node1, "/topics/far/messages?from=beginning");
    let shown: Vec<Vec<String>> = table(&page, "messages")
        .into_iter()
        .map(|r| vec![r[0].clone(), r[2].clone(), r[3].clone(), r[4].clone()])
        .collect();
    let want: Vec<Vec<String>> = (0..4)
        .map(|i| {
            vec![
                i.to_string(),
                format!("k{i}"),
                format!("{{\"n\":{i}}}"),
                format!("trace: t-{i}"),
            ]
        })
        .collect();
    assert_eq!(shown, want);
    // JSON pretty-printed, hex, from an offset, a search.
    let json = table(
        &get_ok(
            node1,
            "/topics/far/messages?from=offset&offset=2&limit=1&format=json",
        ),
        "messages",
    );
    assert_eq!(json.len(), 1);
    assert_eq!(
        (json[0][0].as_str(), json[0][3].as_str()),
        ("2", "{\n  \"n\": 2\n}")
    );
    let hex = table(
        &get_ok(
            node1,
            "/topics/far/messages?from=offset&offset=3&limit=1&format=hex",
        ),
        "messages",
    );
    assert_eq!(hex[0][2], "6b 33");
    let found = table(
        &get_ok(node1, "/topics/far/messages?from=beginning&search=T-2"),
        "messages",
    );
    assert_eq!(
        found.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        ["2"]
    );
    // The group's lag, through a node that may not be its coordinator.
    let group = table(&get_ok(node1, "/groups/remote-lag"), "offsets");
    assert_eq!(group, [["far", "0", "1", "4", "3", ""]]);
    // A record produced through node 2's console lands on node 3's
    // partition.
    let answer = vltava_tests::http_post(
        &cluster.admin[1],
        "/topics/far/produce",
        &[],
        "partition=0&key=from-console&value=hello&headers=a%3A+b&confirm=yes",
    )
    .unwrap();
    // Redirected to the answer, so a reload cannot produce again.
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(
        answer.header("location"),
        Some("/topics/far/produced?partition=0&offset=4")
    );
    let last = table(
        &get_ok(node1, "/topics/far/messages?from=offset&offset=4"),
        "messages",
    );
    assert_eq!(
        last.iter()
            .map(|r| (r[0].as_str(), r[2].as_str(), r[3].as_str(), r[4].as_str()))
            .collect::<Vec<_>>(),
        [("4", "from-console", "hello", "a: b")]
    );
    // A topic created through node 2's console is served by node 3.
    let (status, body) = post(
        &cluster.admin[1],
        "/new-topic",
        &[],
        "name=made-here&partitions=3&replication_factor=2&confirm=yes",
    );
    assert_eq!(status, 303, "{body}");
    let mut raw = RawClient::connect(cluster.node(3).addr()).unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        raw.request(
            &kafka_protocol::messages::MetadataRequest::default().with_topics(None),
            12,
        )
        .unwrap()
        .topics
        .iter()
        .any(|t| {
            t.name.as_ref().map(|n| n.as_str()) == Some("made-here") && t.partitions.len() == 3
        })
    }));
}

/// The value of the hidden field `name` in a confirmation form.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + marker.len();
    page[start..start + page[start..].find('"').unwrap()].to_string()
}

/// What a console write checks: the host it was sent to (a DNS-rebinding
/// page names its own), a confirmation made stale by the group committing
/// since its dry run, a plan naming a partition that does not exist or an
/// offset outside the log, a shift with nothing to shift from, and a
/// partition count that is not larger.
#[test]
fn console_writes_refuse_foreign_hosts_stale_plans_and_bad_forms() {
    let (broker, admin) = admin_broker(&[("admin.console.allowed.hosts", "Console.Example")]);
    let port = admin.rsplit_once(':').unwrap().1.to_string();
    let rebound = format!("rebound.example:{port}");
    let get_as = |host: &str, path: &str| {
        vltava_tests::http_request(&admin, "GET", path, &[("Host", host)], "").unwrap()
    };
    let refused = get_as(&rebound, "/topics");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("admin.console.allowed.hosts"),
        "{}",
        refused.body
    );
    let origin = format!("http://{rebound}");
    let forged = vltava_tests::http_request(
        &admin,
        "POST",
        "/new-topic",
        &[
            ("Host", &rebound),
            ("Origin", &origin),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "name=rebound&partitions=1&confirm=yes",
    )
    .unwrap();
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(
        get_as(&rebound, "/metrics").status,
        200,
        "scrapers use names"
    );
    for host in [
        format!("console.example:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        admin.clone(),
    ] {
        assert_eq!(get_as(&host, "/").status, 200, "{host}");
    }

    // Two partitions of three records; the group committed 1 and 2.
    let mut raw = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(raw.create_topic_code("plan", 2).unwrap(), 0);
    assert_eq!(raw.create_topic_code("other", 1).unwrap(), 0);
    for p in 0..2 {
        let records: Vec<TestRecord> = (0..3)
            .map(|i| TestRecord::kv("k", &i.to_string()))
            .collect();
        let batch = encode_batch(&records, ProducerStamp::NONE, Compression::None);
        assert_eq!(raw.produce("plan", p, batch, -1).unwrap().error_code, 0);
    }
    let commit = |offsets: &[(i32, i64)]| {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap())
            .set("group.id", "planned")
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        for (p, o) in offsets {
            list.add_partition_offset("plan", *p, Offset::Offset(*o))
                .unwrap();
        }
        consumer.commit(&list, CommitMode::Sync).unwrap();
    };
    commit(&[(0, 1), (1, 2)]);
    let (status, dry) = post(
        &admin,
        "/groups/planned/reset",
        &[],
        "topic=&to=earliest&value=",
    );
    assert_eq!(status, 200, "{dry}");
    assert_eq!(
        table(&dry, "plan"),
        [["plan", "0", "1", "0"], ["plan", "1", "2", "0"]]
    );
    let (plan, was) = (hidden(&dry, "plan"), hidden(&dry, "was"));
    assert_eq!(
        (plan.as_str(), was.as_str()),
        ("plan:0:0,plan:1:0", "plan:0:1,plan:1:2")
    );
    // The group moves on before the confirmation: nothing is reset.
    commit(&[(0, 3)]);
    let (status, body) = post(
        &admin,
        "/groups/planned/reset",
        &[],
        &format!("plan={plan}&was={was}&confirm=yes"),
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("changed since the dry run"), "{body}");
    let committed = |admin: &str| {
        table(&get_ok(admin, "/groups/planned"), "offsets")
            .into_iter()
            .map(|r| r[2].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(committed(&admin), ["3", "2"]);
    for (form, why) in [
        (
            "plan=plan:5:0&was=&confirm=yes",
            "there is no partition plan-5",
        ),
        (
            "plan=plan:0:4&was=plan:0:3&confirm=yes",
            "no longer in its log (0 to 3)",
        ),
        ("plan=&was=&confirm=yes", "names no partition"),
        ("topic=other&to=shift&value=1", "no committed offset there"),
        ("topic=&to=offset&value=x", "not a whole number"),
        (
            "topic=&to=sideways&value=",
            "earliest, latest, offset, timestamp or shift",
        ),
    ] {
        let (status, body) = post(&admin, "/groups/planned/reset", &[], form);
        assert_eq!(status, 400, "{form}: {body}");
        assert!(body.contains(why), "{form}: {body}");
    }
    assert_eq!(committed(&admin), ["3", "2"]);
    for count in ["-1", "2", "x"] {
        let (status, body) = post(
            &admin,
            "/topics/plan/partitions",
            &[],
            &format!("count={count}&confirm=yes"),
        );
        assert_eq!(status, 400, "{count}: {body}");
    }
    let (status, body) = post(&admin, "/topics/plan/delete", &[], "typed=pla&confirm=yes");
    assert_eq!(status, 400, "{body}");
    let topics = table(&get_ok(&admin, "/topics"), "topics");
    assert!(
        topics.contains(&vec![
            "plan".to_string(),
            "2".into(),
            "1".into(),
            "0".into()
        ]),
        "{topics:?}"
    );
}
