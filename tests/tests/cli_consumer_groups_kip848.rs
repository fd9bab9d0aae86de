//! `vltava consumer-groups` against a KIP-848 group (librdkafka with
//! `group.protocol=consumer`) and a classic group side by side: `--describe`
//! (offsets and lag, `--members`, `--members --verbose`, `--state`,
//! `--state --verbose`), `--list --type` / `--list --state`, and the errors
//! for unknown groups and bad filters, compared exactly with what Kafka 4's
//! `kafka-consumer-groups.sh` prints.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use regex::Regex;
use vltava_tests::{stdout_ok, text, vltava_tool, wait_until, TestBroker};

const DEADLINE: Duration = Duration::from_secs(30);
const TOPIC: &str = "orders";

/// `vltava consumer-groups --bootstrap-server <bs> <args>`: (exit code, stdout, stderr).
fn groups_tool(bs: &str, args: &[&str]) -> (i32, String, String) {
    let out = vltava_tool("consumer-groups", bs, args);
    (
        out.status.code().expect("exit code"),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// Succeeds with an empty stderr; returns stdout.
fn ok(bs: &str, args: &[&str]) -> String {
    let (code, stdout, stderr) = groups_tool(bs, args);
    assert_eq!(
        (code, stderr.as_str()),
        (0, ""),
        "{args:?}\nstdout: {stdout}"
    );
    stdout
}

/// Partition 0 gets six records, partition 1 four.
fn produce(bs: &str) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .create()
        .expect("producer");
    for (partition, count) in [(0, 6), (1, 4)] {
        for i in 0..count {
            let value = format!("p{partition}-{i}");
            producer
                .send(
                    BaseRecord::<(), String>::to(TOPIC)
                        .partition(partition)
                        .payload(&value),
                )
                .expect("enqueue");
        }
    }
    producer.flush(DEADLINE).expect("flush");
}

fn consumer(bs: &str, group: &str, client_id: &str, protocol: &str) -> BaseConsumer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bs)
        .set("group.id", group)
        .set("client.id", client_id)
        .set("group.protocol", protocol)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100");
    if protocol == "classic" {
        // KIP-848 members get their session timing from the broker.
        cfg.set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "300");
    }
    let c: BaseConsumer = cfg.create().expect("consumer");
    c.subscribe(&[TOPIC]).expect("subscribe");
    c
}

/// Polls until the consumer owns both partitions and has read `reads`
/// records, then commits `offsets` (partition, offset).
fn consume_and_commit(c: &BaseConsumer, reads: usize, offsets: &[(i32, i64)]) {
    let mut seen = 0;
    let done = wait_until(DEADLINE, || {
        if let Some(msg) = c.poll(Duration::from_millis(50)) {
            msg.expect("message");
            seen += 1;
        }
        seen >= reads && c.assignment().expect("assignment").count() == 2
    });
    assert!(done, "consumer read {seen} of {reads} records");
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(TOPIC, *p, Offset::Offset(*o))
            .expect("offset");
    }
    c.commit(&tpl, CommitMode::Sync).expect("commit");
}

/// `--describe --members` output's one member row: (consumer id, host).
fn member_of(bs: &str, group: &str) -> (String, String) {
    let out = ok(bs, &["--describe", "--group", group, "--members"]);
    let row = out.lines().nth(2).expect("member row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    (cells[1].to_string(), cells[2].to_string())
}

fn w(s: &str, min: usize) -> usize {
    s.len().max(min)
}

#[test]
fn describe_and_list_consumer_and_classic_groups() {
    let broker = TestBroker::start(&[("group.initial.rebalance.delay.ms", "0")]);
    let bs = broker.bootstrap();
    let create = ["--create", "--topic", TOPIC, "--partitions", "2"];
    stdout_ok(create, &vltava_tool("topics", &bs, &create));
    produce(&bs);

    // Both members stay in their groups while they are described.
    let kip = consumer(&bs, "kip", "kip-client", "consumer");
    consume_and_commit(&kip, 10, &[(0, 6), (1, 1)]);
    let classic = consumer(&bs, "cls", "cls-client", "classic");
    consume_and_commit(&classic, 10, &[(0, 2), (1, 4)]);

    // The KIP-848 member reconciles asynchronously; wait for Stable.
    let stable = wait_until(DEADLINE, || {
        ok(&bs, &["--list", "--state", "Stable"]).lines().count() == 3
    });
    assert!(stable, "{}", ok(&bs, &["--list", "--state"]));

    let (kip_id, host) = member_of(&bs, "kip");
    // librdkafka's KIP-848 member id: a UUID, base64 without padding.
    assert!(
        Regex::new(r"^[A-Za-z0-9+/_-]{22}$")
            .unwrap()
            .is_match(&kip_id),
        "{kip_id}"
    );
    assert_eq!(host, "/127.0.0.1");
    let (cls_id, _) = member_of(&bs, "cls");
    assert!(cls_id.starts_with("cls-client-"), "{cls_id}");

    // Offsets and lag: LAG = LOG-END-OFFSET - CURRENT-OFFSET.
    let mw = w(&kip_id, 15);
    assert_eq!(
        ok(&bs, &["--describe", "--group", "kip"]),
        format!(
            "\nGROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             {:mw$} HOST            CLIENT-ID\n\
             kip             orders          0          6               6               0               {kip_id:mw$} /127.0.0.1      kip-client\n\
             kip             orders          1          1               4               3               {kip_id:mw$} /127.0.0.1      kip-client\n",
            "CONSUMER-ID"
        )
    );
    let cw = w(&cls_id, 15);
    assert_eq!(
        ok(&bs, &["--describe", "--group", "cls"]),
        format!(
            "\nGROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             {:cw$} HOST            CLIENT-ID\n\
             cls             orders          0          2               6               4               {cls_id:cw$} /127.0.0.1      cls-client\n\
             cls             orders          1          4               4               0               {cls_id:cw$} /127.0.0.1      cls-client\n",
            "CONSUMER-ID"
        )
    );

    // Members: Kafka 4 pads #PARTITIONS to 15 and leaves the trailing space.
    assert_eq!(
        ok(&bs, &["--describe", "--group", "kip", "--members"]),
        format!(
            "\nGROUP           {:mw$} HOST            CLIENT-ID       #PARTITIONS     \n\
             kip             {kip_id:mw$} /127.0.0.1      kip-client      2               \n",
            "CONSUMER-ID"
        )
    );
    // --verbose: the member's epoch and assignments; a classic group has no
    // epochs or target assignment.
    let verbose = |group: &str| {
        let out = ok(
            &bs,
            &["--describe", "--group", group, "--members", "--verbose"],
        );
        out.lines().map(str::to_string).collect::<Vec<_>>()
    };
    let kip_verbose = verbose("kip");
    assert_eq!(
        kip_verbose,
        [
            String::new(),
            format!(
                "GROUP           {:mw$} HOST            CLIENT-ID       #PARTITIONS     CURRENT-EPOCH   CURRENT-ASSIGNMENT   TARGET-EPOCH    TARGET-ASSIGNMENT   ",
                "CONSUMER-ID"
            ),
            format!(
                "kip             {kip_id:mw$} /127.0.0.1      kip-client      2               1               orders:0,1           1               orders:0,1          "
            ),
        ]
    );
    assert_eq!(
        verbose("cls"),
        [
            String::new(),
            format!(
                "GROUP           {:cw$} HOST            CLIENT-ID       #PARTITIONS     CURRENT-EPOCH   CURRENT-ASSIGNMENT   TARGET-EPOCH    TARGET-ASSIGNMENT   ",
                "CONSUMER-ID"
            ),
            format!(
                "cls             {cls_id:cw$} /127.0.0.1      cls-client      2               -               orders:0,1           -               -                   "
            ),
        ]
    );

    // State: the coordinator is this broker (node 1).
    let coordinator = format!("{bs}  (1)");
    let kw = w(&coordinator, 25);
    assert_eq!(
        ok(&bs, &["--describe", "--group", "kip", "--state"]),
        format!(
            "\nGROUP           {:kw$} ASSIGNMENT-STRATEGY  STATE                #MEMBERS\n\
             kip             {coordinator:kw$} uniform              Stable               1\n",
            "COORDINATOR (ID)"
        )
    );
    assert_eq!(
        ok(&bs, &["--describe", "--group", "kip", "--state", "--verbose"]),
        format!(
            "\nGROUP           {:kw$} ASSIGNMENT-STRATEGY  STATE                GROUP-EPOCH     TARGET-ASSIGNMENT-EPOCH   #MEMBERS\n\
             kip             {coordinator:kw$} uniform              Stable               1               1                         1\n",
            "COORDINATOR (ID)"
        )
    );
    assert_eq!(
        ok(&bs, &["--describe", "--group", "cls", "--state", "--verbose"]),
        format!(
            "\nGROUP           {:kw$} ASSIGNMENT-STRATEGY  STATE                GROUP-EPOCH     TARGET-ASSIGNMENT-EPOCH   #MEMBERS\n\
             cls             {coordinator:kw$} range                Stable               -               -                         1\n",
            "COORDINATOR (ID)"
        )
    );

    // Listing: plain, by type, by state, both; GROUP is padded to 15 + 10.
    assert_eq!(ok(&bs, &["--list"]), "cls\nkip\n");
    assert_eq!(
        ok(&bs, &["--list", "--type"]),
        "GROUP                     TYPE                \n\
         cls                       Classic             \n\
         kip                       Consumer            \n"
    );
    assert_eq!(
        ok(&bs, &["--list", "--type", "consumer"]),
        "GROUP                     TYPE                \n\
         kip                       Consumer            \n"
    );
    assert_eq!(
        ok(&bs, &["--list", "--type", "CLASSIC"]),
        "GROUP                     TYPE                \n\
         cls                       Classic             \n"
    );
    assert_eq!(
        ok(&bs, &["--list", "--state"]),
        "GROUP                     STATE               \n\
         cls                       Stable              \n\
         kip                       Stable              \n"
    );
    assert_eq!(
        ok(&bs, &["--list", "--state", "empty"]),
        "GROUP                     STATE               \n"
    );
    assert_eq!(
        ok(&bs, &["--list", "--type", "--state", "stable,empty"]),
        "GROUP                     TYPE                 STATE               \n\
         cls                       Classic              Stable              \n\
         kip                       Consumer             Stable              \n"
    );

    // The KIP-848 member leaves: the group is Empty and keeps its offsets.
    drop(kip);
    let empty = wait_until(DEADLINE, || {
        ok(&bs, &["--list", "--state", "Empty"]).contains("\nkip ")
    });
    assert!(empty, "{}", ok(&bs, &["--list", "--state"]));
    let (code, stdout, stderr) = groups_tool(&bs, &["--describe", "--group", "kip"]);
    assert_eq!(code, 0);
    assert_eq!(stderr, "\nConsumer group 'kip' has no active members.\n");
    assert_eq!(
        stdout,
        "\nGROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID     HOST            CLIENT-ID\n\
         kip             orders          0          6               6               0               -               -               -\n\
         kip             orders          1          1               4               3               -               -               -\n"
    );

    // Errors, as Kafka words them.
    assert_eq!(
        groups_tool(&bs, &["--describe", "--group", "nope"]),
        (
            1,
            String::new(),
            "Error: Consumer group 'nope' does not exist.\n".to_string()
        )
    );
    assert_eq!(
        groups_tool(&bs, &["--list", "--state", "Sleeping"]),
        (
            1,
            String::new(),
            "Invalid state list 'Sleeping'. Valid states are: PreparingRebalance, CompletingRebalance, Stable, Dead, Empty, Assigning, Reconciling\n".to_string()
        )
    );
    assert_eq!(
        groups_tool(&bs, &["--list", "--type", "share"]),
        (
            1,
            String::new(),
            "Invalid types list 'share'. Valid types are: Classic, Consumer\n".to_string()
        )
    );
    drop(classic);
}
