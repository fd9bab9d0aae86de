//! Consumer groups through librdkafka (the `rdkafka` crate) and raw frames:
//! three members share six partitions exactly, DescribeGroups shows them,
//! committed offsets survive a SIGKILL of the broker, OffsetFetch answers for
//! many groups at once (v8) with metadata and leader epochs intact, and
//! OffsetDelete refuses to drop offsets of a topic the group is subscribed to.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{admin, create_topic, producer};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use vltava_tests::raw::{topic_name, RawClient};
use vltava_tests::TestBroker;

const TOPIC: &str = "events";
const PARTITIONS: i32 = 6;
const PER_PARTITION: i64 = 10;
const SESSION_MS: &str = "3000";
const DEADLINE: Duration = Duration::from_secs(20);

const GROUP_ID_NOT_FOUND: i16 = 69;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

fn group_broker() -> TestBroker {
    TestBroker::start(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.min.session.timeout.ms", "1000"),
    ])
}

fn group_consumer(bootstrap: &str, group: &str, client_id: &str, reset: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("client.id", client_id)
        .set("session.timeout.ms", SESSION_MS)
        .set("heartbeat.interval.ms", "300")
        .set("partition.assignment.strategy", "range")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", reset)
        .set("fetch.wait.max.ms", "100")
        .set("enable.partition.eof", "false")
        .create()
        .expect("group consumer")
}

fn assigned(c: &BaseConsumer) -> Vec<i32> {
    let mut parts: Vec<i32> = c
        .assignment()
        .expect("assignment")
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect();
    parts.sort_unstable();
    parts
}

/// Polls every consumer in turn (their rebalance callbacks run in poll) until
/// `done` holds; records go to `seen` as (member, partition, offset, value).
fn poll_until(
    consumers: &[BaseConsumer],
    seen: &mut Vec<(usize, i32, i64, String)>,
    what: &str,
    mut done: impl FnMut(&[BaseConsumer], &[(usize, i32, i64, String)]) -> bool,
) {
    let deadline = Instant::now() + DEADLINE;
    while !done(consumers, seen) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        for (i, c) in consumers.iter().enumerate() {
            if let Some(msg) = c.poll(Duration::from_millis(20)) {
                let msg = msg.unwrap_or_else(|e| panic!("consumer {i}: {e}"));
                let value = String::from_utf8(msg.payload().expect("value").to_vec()).unwrap();
                seen.push((i, msg.partition(), msg.offset(), value));
            }
        }
    }
}

/// Produces PER_PARTITION records to each partition, values `p<partition>-<index>`.
async fn produce_each(bootstrap: &str, from: i64, to: i64) {
    let producer = producer(bootstrap, &[("acks", "all")]);
    for i in from..to {
        for p in 0..PARTITIONS {
            let value = format!("p{p}-{i}");
            let delivery = producer
                .send(
                    FutureRecord::<(), _>::to(TOPIC)
                        .partition(p)
                        .payload(&value),
                    Duration::from_secs(20),
                )
                .await
                .unwrap_or_else(|(e, _)| panic!("produce {value}: {e}"));
            assert_eq!(
                (delivery.partition, delivery.offset),
                (p, i),
                "{value} landed elsewhere"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_commit_then_broker_sigkill_resumes_at_committed_offsets() {
    let mut broker = group_broker();
    let bs = broker.bootstrap();
    create_topic(&admin(&bs), TOPIC, PARTITIONS).await;

    let members: Vec<BaseConsumer> = (0..3)
        .map(|i| group_consumer(&bs, "trio", &format!("member-{i}"), "earliest"))
        .collect();
    for c in &members {
        c.subscribe(&[TOPIC]).expect("subscribe");
    }
    let mut seen = Vec::new();
    poll_until(&members, &mut seen, "a 2/2/2 assignment", |cs, _| {
        cs.iter().all(|c| assigned(c).len() == 2)
    });
    let assignment: Vec<Vec<i32>> = members.iter().map(assigned).collect();
    let union: BTreeSet<i32> = assignment.iter().flatten().copied().collect();
    assert_eq!(union, (0..PARTITIONS).collect(), "{assignment:?}");
    assert_eq!(
        assignment.iter().map(Vec::len).sum::<usize>(),
        PARTITIONS as usize,
        "a partition assigned twice: {assignment:?}"
    );

    // DescribeGroups (librdkafka's group list) sees the three members and their hosts.
    let groups = members[0]
        .fetch_group_list(Some("trio"), Duration::from_secs(10))
        .expect("group list");
    let group = &groups.groups()[0];
    assert_eq!(groups.groups().len(), 1);
    assert_eq!(
        (
            group.name(),
            group.state(),
            group.protocol_type(),
            group.protocol()
        ),
        ("trio", "Stable", "consumer", "range")
    );
    let mut clients: Vec<(&str, &str)> = group
        .members()
        .iter()
        .map(|m| (m.client_id(), m.client_host()))
        .collect();
    clients.sort_unstable();
    assert_eq!(
        clients,
        vec![
            ("member-0", "/127.0.0.1"),
            ("member-1", "/127.0.0.1"),
            ("member-2", "/127.0.0.1")
        ]
    );

    produce_each(&bs, 0, PER_PARTITION).await;
    let total = (PARTITIONS as i64 * PER_PARTITION) as usize;
    poll_until(&members, &mut seen, "every record", |_, s| s.len() >= total);
    assert_eq!(seen.len(), total);
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (member, p, o, value) in &seen {
        assert!(
            assignment[*member].contains(p),
            "member {member} got partition {p} it does not own"
        );
        assert_eq!(value, &format!("p{p}-{o}"));
        by_partition.entry(*p).or_default().push(*o);
    }
    for (p, offsets) in &by_partition {
        assert_eq!(
            offsets,
            &(0..PER_PARTITION).collect::<Vec<_>>(),
            "partition {p}"
        );
    }

    // Each member commits offset 7 for its partitions: 7, 8, 9 stay uncommitted.
    const COMMITTED: i64 = 7;
    for c in &members {
        let mut tpl = TopicPartitionList::new();
        for p in assigned(c) {
            tpl.add_partition_offset(TOPIC, p, Offset::Offset(COMMITTED))
                .unwrap();
        }
        c.commit(&tpl, CommitMode::Sync).expect("commit");
        let back = c.committed(Duration::from_secs(10)).expect("committed");
        for e in back.elements() {
            assert_eq!(e.offset(), Offset::Offset(COMMITTED), "{}", e.partition());
        }
    }
    drop(members);

    broker.kill_sigkill();
    broker.restart();

    // `latest` would skip 7..10 if the commits had been lost.
    let resumed = [group_consumer(&bs, "trio", "resumed", "latest")];
    resumed[0].subscribe(&[TOPIC]).expect("subscribe");
    let mut again = Vec::new();
    let expected = (PARTITIONS as i64 * (PER_PARTITION - COMMITTED)) as usize;
    poll_until(&resumed, &mut again, "the uncommitted records", |_, s| {
        s.len() >= expected
    });
    // Nothing beyond them arrives.
    let quiet = Instant::now() + Duration::from_millis(700);
    while Instant::now() < quiet {
        if let Some(msg) = resumed[0].poll(Duration::from_millis(50)) {
            let msg = msg.expect("consume");
            panic!("extra record {}/{}", msg.partition(), msg.offset());
        }
    }
    let mut got: Vec<(i32, i64, String)> =
        again.into_iter().map(|(_, p, o, v)| (p, o, v)).collect();
    got.sort();
    let want: Vec<(i32, i64, String)> = (0..PARTITIONS)
        .flat_map(|p| (COMMITTED..PER_PARTITION).map(move |o| (p, o, format!("p{p}-{o}"))))
        .collect();
    assert_eq!(got, want);
}

fn group_id(name: &str) -> GroupId {
    GroupId(StrBytes::from_string(name.to_string()))
}

fn fetch_groups(client: &mut RawClient, groups: &[(&str, Option<&[i32]>)]) -> OffsetFetchResponse {
    let groups = groups
        .iter()
        .map(|(g, parts)| {
            OffsetFetchRequestGroup::default()
                .with_group_id(group_id(g))
                .with_topics(parts.map(|ps| {
                    vec![OffsetFetchRequestTopics::default()
                        .with_name(topic_name(TOPIC))
                        .with_partition_indexes(ps.to_vec())]
                }))
        })
        .collect();
    client
        .request(&OffsetFetchRequest::default().with_groups(groups), 8)
        .expect("OffsetFetch v8")
}

/// (group, partition) → (offset, leader epoch, metadata, error), group errors as partition -1.
type Fetched = BTreeMap<(String, i32), (i64, i32, Option<String>, i16)>;

fn flatten(resp: &OffsetFetchResponse) -> Fetched {
    let mut out = BTreeMap::new();
    for g in &resp.groups {
        out.insert((g.group_id.0.to_string(), -1), (0, 0, None, g.error_code));
        for t in &g.topics {
            assert_eq!(t.name.0.as_str(), TOPIC);
            for p in &t.partitions {
                out.insert(
                    (g.group_id.0.to_string(), p.partition_index),
                    (
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.metadata.as_ref().map(|m| m.to_string()),
                        p.error_code,
                    ),
                );
            }
        }
    }
    out
}

fn commit_raw(
    client: &mut RawClient,
    group: &str,
    partition: i32,
    offset: i64,
    epoch: i32,
    metadata: Option<&str>,
) {
    let req = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(epoch)
                .with_committed_metadata(
                    metadata.map(|m| StrBytes::from_string(m.to_string())),
                )])]);
    let resp = client.request(&req, 8).expect("OffsetCommit v8");
    assert_eq!(resp.topics.len(), 1);
    assert_eq!(
        resp.topics[0].partitions[0].error_code, 0,
        "commit {group}/{partition}"
    );
}

fn delete_offsets(client: &mut RawClient, group: &str, partition: i32) -> OffsetDeleteResponse {
    let req = OffsetDeleteRequest::default()
        .with_group_id(group_id(group))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(partition)
            ])]);
    client.request(&req, 0).expect("OffsetDelete v0")
}

fn row(offset: i64, epoch: i32, metadata: &str) -> (i64, i32, Option<String>, i16) {
    (offset, epoch, Some(metadata.to_string()), 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_fetch_many_groups_and_offset_delete() {
    let mut broker = group_broker();
    let bs = broker.bootstrap();
    create_topic(&admin(&bs), TOPIC, 2).await;
    let mut client = RawClient::connect(broker.addr()).unwrap();

    // Simple-consumer commits (generation -1, no member): exact metadata bytes and epochs.
    commit_raw(&mut client, "alpha", 0, 5, 3, Some("meta \u{0} α"));
    commit_raw(&mut client, "beta", 1, 9, -1, None);
    broker.kill_sigkill();
    broker.restart();
    let mut client = RawClient::connect(broker.addr()).unwrap();

    let both: &[i32] = &[0, 1];
    let resp = fetch_groups(
        &mut client,
        &[
            ("alpha", None),
            ("beta", Some(both)),
            ("nobody", Some(both)),
        ],
    );
    assert_eq!(resp.groups.len(), 3);
    let s = String::from;
    let want: Fetched = [
        ((s("alpha"), -1), (0, 0, None, 0)),
        ((s("alpha"), 0), row(5, 3, "meta \u{0} α")),
        ((s("beta"), -1), (0, 0, None, 0)),
        ((s("beta"), 0), row(-1, -1, "")),
        // A null metadata is stored as "" (Java's OffsetAndMetadata.NO_METADATA).
        ((s("beta"), 1), row(9, -1, "")),
        ((s("nobody"), -1), (0, 0, None, 0)),
        ((s("nobody"), 0), row(-1, -1, "")),
        ((s("nobody"), 1), row(-1, -1, "")),
    ]
    .into_iter()
    .collect();
    assert_eq!(flatten(&resp), want);

    let resp = delete_offsets(&mut client, "nobody", 0);
    assert_eq!(resp.error_code, GROUP_ID_NOT_FOUND);

    // While a member of "alpha" is subscribed to the topic its offsets stay.
    let member = [group_consumer(&bs, "alpha", "holder", "earliest")];
    member[0].subscribe(&[TOPIC]).unwrap();
    let mut seen = Vec::new();
    poll_until(&member, &mut seen, "alpha's member assigned", |cs, _| {
        assigned(&cs[0]) == vec![0, 1]
    });
    let resp = delete_offsets(&mut client, "alpha", 0);
    assert_eq!(resp.error_code, 0);
    assert_eq!(
        resp.topics[0].partitions[0].error_code,
        GROUP_SUBSCRIBED_TO_TOPIC
    );
    drop(member); // close: LeaveGroup, the group is empty

    let resp = delete_offsets(&mut client, "alpha", 0);
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    let one: &[i32] = &[0];
    let resp = fetch_groups(&mut client, &[("alpha", Some(one))]);
    assert_eq!(flatten(&resp).get(&(s("alpha"), 0)), Some(&row(-1, -1, "")));
}
