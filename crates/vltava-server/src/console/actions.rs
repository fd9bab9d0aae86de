//! The console's write actions. Each is a form posted twice: the first
//! post checks it (with the broker's own validation where Kafka has one:
//! CreateTopics' `validate_only`) and shows what will happen, the second,
//! carrying `confirm=yes`, does it. Every post passes `writable` first
//! (read-only mode, cross-site posts). The work goes through the
//! console's Kafka client, so the cluster answers as it answers any
//! client, with Kafka's error text shown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use bytes::Bytes;
use maud::{html, Markup};
use vltava_broker::Broker;
use vltava_client::admin::{Admin as KafkaAdmin, NewTopic};
use vltava_client::consumer::{OffsetSpec, TopicPartition};
use vltava_client::producer::{Producer, ProducerConfig, ProducerRecord};

use super::groups::log_ends;
use super::{
    confirmation, kafka, page, parse_utc, partition_field, problem, segment, starting, topic_of,
    writable, writable_topic,
};
use crate::admin::Admin;

/// The most `name=value` config lines a create-topic form takes.
pub const TOPIC_CONFIGS_MAX: usize = 100;

/// The most headers a produce form takes.
pub const HEADERS_MAX: usize = 100;

/// The most partitions one reset plan names.
pub const RESET_PARTITIONS_MAX: usize = 100_000;

/// How long an action waits for this node's metadata to show its effect
/// before moving on to the page that shows it.
const METADATA_PATIENCE: Duration = Duration::from_secs(10);

fn refused(e: impl std::fmt::Display) -> Response {
    problem(StatusCode::BAD_REQUEST, "Refused", &e.to_string())
}

fn failed(e: &vltava_client::Error) -> Response {
    match e {
        // The cluster answered and said no.
        vltava_client::Error::Kafka(k) => refused(k.text()),
        other => problem(
            StatusCode::BAD_GATEWAY,
            "The cluster did not answer",
            &other.to_string(),
        ),
    }
}

/// Waits until this node's metadata satisfies `done` (a write went through
/// the controller; the page after it reads this node's state).
async fn settle(broker: &Broker, done: impl Fn(&Broker) -> bool) {
    let deadline = tokio::time::Instant::now() + METADATA_PATIENCE;
    while !done(broker) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn field(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn confirmed(v: &Option<String>) -> bool {
    v.as_deref() == Some("yes")
}

// ---- create a topic ------------------------------------------------------

#[derive(serde::Deserialize, Default)]
pub struct CreateTopic {
    name: Option<String>,
    partitions: Option<String>,
    replication_factor: Option<String>,
    configs: Option<String>,
    confirm: Option<String>,
}

fn create_form(f: &CreateTopic, error: Option<&str>) -> Markup {
    html! {
        h1 { "Create a topic" }
        @if let Some(e) = error { p.error id="error" { (e) } }
        form.panel method="post" action="/new-topic" {
            label { "Name" input type="text" name="name" required value=(f.name.as_deref().unwrap_or("")); }
            label { "Partitions (empty: the broker's num.partitions)"
                input type="number" name="partitions" min="1" value=(f.partitions.as_deref().unwrap_or("")); }
            label { "Replication factor (empty: default.replication.factor)"
                input type="number" name="replication_factor" min="1" value=(f.replication_factor.as_deref().unwrap_or("")); }
            label { "Configs, one name=value a line"
                textarea name="configs" rows="4" cols="40" { (f.configs.as_deref().unwrap_or("")) } }
            button type="submit" id="create" { "Create…" }
        }
    }
}

pub async fn create_topic_form(State(admin): State<Arc<Admin>>) -> Response {
    if admin.broker().is_none() {
        return starting();
    }
    if admin.read_only() {
        return problem(
            StatusCode::FORBIDDEN,
            "Read-only console",
            "This console is read-only (admin.console.read.only=true): it changes nothing.",
        );
    }
    page("Create a topic", create_form(&CreateTopic::default(), None)).into_response()
}

fn new_topic(f: &CreateTopic) -> Result<NewTopic, String> {
    let name = field(&f.name).ok_or("give the topic a name")?.to_string();
    let number = |v: &Option<String>, what: &str| -> Result<i32, String> {
        match field(v) {
            None => Ok(-1),
            Some(n) => n
                .parse::<i32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or(format!("{what} {n}: a whole number, 1 or more")),
        }
    };
    let partitions = number(&f.partitions, "partitions")?;
    let replication_factor = number(&f.replication_factor, "replication factor")?;
    let replication_factor = i16::try_from(replication_factor)
        .map_err(|_| format!("replication factor {replication_factor}: too large"))?;
    let mut configs = Vec::new();
    for line in f.configs.as_deref().unwrap_or("").lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or(format!("config line {line}: write name=value"))?;
        configs.push((k.trim().to_string(), v.trim().to_string()));
        if configs.len() > TOPIC_CONFIGS_MAX {
            return Err(format!("more than {TOPIC_CONFIGS_MAX} configs"));
        }
    }
    Ok(NewTopic {
        name,
        partitions,
        replication_factor,
        configs,
        assignments: Vec::new(),
    })
}

pub async fn create_topic(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Form(f): Form<CreateTopic>,
) -> Response {
    let broker = match writable(&admin, &headers) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let topic = match new_topic(&f) {
        Ok(t) => t,
        Err(why) => {
            let body = create_form(&f, Some(&why));
            return (StatusCode::BAD_REQUEST, page("Create a topic", body)).into_response();
        }
    };
    let client = match kafka(&admin, &broker).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let kafka = KafkaAdmin::new(client);
    // The first post asks the controller to validate only; the second
    // creates.
    let create = confirmed(&f.confirm);
    let answer = match kafka
        .create_topics(std::slice::from_ref(&topic), !create)
        .await
    {
        Ok(mut results) if results.len() == 1 => results.remove(0).1,
        Ok(_) => {
            return problem(
                StatusCode::BAD_GATEWAY,
                "Unexpected answer",
                "CreateTopics answered for other topics",
            )
        }
        Err(e) => return failed(&e),
    };
    if let Err(e) = answer {
        let body = create_form(&f, Some(&e.text()));
        return (StatusCode::BAD_REQUEST, page("Create a topic", body)).into_response();
    }
    if create {
        settle(&broker, |b| b.topic(&topic.name).is_some()).await;
        return Redirect::to(&format!("/topics/{}", topic.name)).into_response();
    }
    let or_default = |n: i32, default: &str| {
        if n < 0 {
            format!("the broker's {default}")
        } else {
            n.to_string()
        }
    };
    let body = html! {
        h1 { "Create topic " code { (topic.name) } "?" }
        p id="plan" {
            (or_default(topic.partitions, "num.partitions")) " partitions, replication factor "
            (or_default(i32::from(topic.replication_factor), "default.replication.factor"))
            @if !topic.configs.is_empty() { ", configs " code { (topic.configs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")) } }
            ". The controller has checked it."
        }
        (confirmation("/new-topic", &[
            ("name", &topic.name),
            ("partitions", f.partitions.as_deref().unwrap_or("")),
            ("replication_factor", f.replication_factor.as_deref().unwrap_or("")),
            ("configs", f.configs.as_deref().unwrap_or("")),
        ], "Create topic", "/topics"))
    };
    page("Create a topic", body).into_response()
}

// ---- add partitions ------------------------------------------------------

#[derive(serde::Deserialize)]
pub struct AddPartitions {
    count: Option<String>,
    confirm: Option<String>,
}

pub async fn add_partitions(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<AddPartitions>,
) -> Response {
    let (broker, topic) = match writable_topic(&admin, &headers, &name) {
        Ok(found) => found,
        Err(page) => return *page,
    };
    let now = topic.partitions.len();
    let count = match field(&f.count).and_then(|c| c.parse::<i32>().ok()) {
        Some(c) if usize::try_from(c).is_ok_and(|c| c > now) => c,
        _ => {
            return refused(format!(
                "the new partition count must be a whole number above {now}, the current count"
            ))
        }
    };
    let back = format!("/topics/{name}");
    if !confirmed(&f.confirm) {
        let body = html! {
            h1 { "Add partitions to " code { (name) } "?" }
            p id="plan" {
                "From " (now) " to " (count) " partitions. Records with a key go to the partition its hash picks among all partitions: "
                "after this, new records of a key may land in another partition than its earlier ones."
            }
            (confirmation(&format!("{back}/partitions"), &[("count", &count.to_string())], "Add partitions", &back))
        };
        return page("Add partitions", body).into_response();
    }
    let client = match kafka(&admin, &broker).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(e) = KafkaAdmin::new(client)
        .create_partitions(&name, count, None)
        .await
    {
        return failed(&e);
    }
    settle(&broker, |b| {
        b.topic(&name)
            .is_some_and(|t| t.partitions.len() == count as usize)
    })
    .await;
    Redirect::to(&back).into_response()
}

// ---- delete a topic ------------------------------------------------------

#[derive(serde::Deserialize)]
pub struct DeleteTopic {
    typed: Option<String>,
    confirm: Option<String>,
}

pub async fn delete_topic(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<DeleteTopic>,
) -> Response {
    let broker = match writable_topic(&admin, &headers, &name) {
        Ok((broker, _)) => broker,
        Err(page) => return *page,
    };
    let back = format!("/topics/{name}");
    if !confirmed(&f.confirm) {
        let body = html! {
            h1 { "Delete topic " code { (name) } "?" }
            p.notice { "Every partition and every record of " code { (name) } " is deleted, on every broker. This cannot be undone." }
            form.inline method="post" action={ (back) "/delete" } {
                label { "Type the topic's name to confirm: " input type="text" name="typed" id="typed" autocomplete="off"; }
                input type="hidden" name="confirm" value="yes";
                " " button.danger type="submit" id="confirm" { "Delete topic" }
            }
            a href=(back) id="cancel" { "Cancel" }
        };
        return page("Delete a topic", body).into_response();
    }
    if field(&f.typed) != Some(name.as_str()) {
        return refused(format!(
            "the name typed does not match {name}: nothing was deleted"
        ));
    }
    let client = match kafka(&admin, &broker).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match KafkaAdmin::new(client)
        .delete_topics(std::slice::from_ref(&name))
        .await
    {
        Ok(results) => {
            if let Some((_, Err(e))) = results.into_iter().next() {
                return refused(e.text());
            }
        }
        Err(e) => return failed(&e),
    }
    settle(&broker, |b| b.topic(&name).is_none()).await;
    Redirect::to("/topics").into_response()
}

// ---- produce -------------------------------------------------------------

#[derive(serde::Deserialize, Default)]
pub struct Produce {
    partition: Option<String>,
    key: Option<String>,
    value: Option<String>,
    headers: Option<String>,
    confirm: Option<String>,
}

fn produce_form(name: &str, partitions: usize, f: &Produce) -> Markup {
    html! {
        form.panel method="post" action={ "/topics/" (name) "/produce" } {
            label { "Partition (empty: by the key's hash, as clients pick)"
                input type="number" name="partition" min="0" max=(partitions.saturating_sub(1)) value=(f.partition.as_deref().unwrap_or("")); }
            label { "Key (empty: no key)" input type="text" name="key" value=(f.key.as_deref().unwrap_or("")); }
            label { "Value" textarea name="value" rows="4" cols="50" { (f.value.as_deref().unwrap_or("")) } }
            label { "Headers, one name: value a line"
                textarea name="headers" rows="3" cols="40" { (f.headers.as_deref().unwrap_or("")) } }
            button type="submit" id="produce" { "Produce…" }
        }
    }
}

pub async fn produce_page(State(admin): State<Arc<Admin>>, Path(name): Path<String>) -> Response {
    let (_, topic) = match topic_of(&admin, &name) {
        Ok(found) => found,
        Err(page) => return *page,
    };
    let body = html! {
        h1 { "Produce to " a href={ "/topics/" (name) } { code { (name) } } }
        @if admin.read_only() {
            p.notice { "This console is read-only (admin.console.read.only=true)." }
        } @else {
            (produce_form(&name, topic.partitions.len(), &Produce::default()))
        }
    };
    page(&format!("Produce to {name}"), body).into_response()
}

/// The record a produce form describes.
fn record(name: &str, partitions: usize, f: &Produce) -> Result<ProducerRecord, String> {
    let partition = match field(&f.partition) {
        None => None,
        Some(p) => Some(partition_field(p, partitions)?),
    };
    let mut headers = Vec::new();
    for line in f.headers.as_deref().unwrap_or("").lines() {
        if line.trim().is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or(format!("header line {line}: write name: value"))?;
        headers.push((
            k.trim().to_string(),
            Some(Bytes::copy_from_slice(v.trim_start().as_bytes())),
        ));
        if headers.len() > HEADERS_MAX {
            return Err(format!("more than {HEADERS_MAX} headers"));
        }
    }
    Ok(ProducerRecord {
        topic: name.to_string(),
        partition,
        key: f
            .key
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(|k| Bytes::copy_from_slice(k.as_bytes())),
        // Browsers send a textarea's line breaks as CRLF; the value keeps
        // the LF that was typed.
        value: Some(Bytes::from(
            f.value.as_deref().unwrap_or("").replace("\r\n", "\n"),
        )),
        headers,
        timestamp_ms: None,
    })
}

pub async fn produce(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<Produce>,
) -> Response {
    let (broker, topic) = match writable_topic(&admin, &headers, &name) {
        Ok(found) => found,
        Err(page) => return *page,
    };
    let partitions = topic.partitions.len();
    let record = match record(&name, partitions, &f) {
        Ok(r) => r,
        Err(why) => return refused(why),
    };
    let action = format!("/topics/{name}/produce");
    if !confirmed(&f.confirm) {
        let text = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
        let body = html! {
            h1 { "Produce to " code { (name) } "?" }
            table id="plan" {
                tr { th { "Partition" } td { (record.partition.map_or("by the key's hash".to_string(), |p| p.to_string())) } }
                tr { th { "Key" } td { pre { (text(&record.key).unwrap_or_else(|| "null".into())) } } }
                tr { th { "Value" } td { pre { (text(&record.value).unwrap_or_default()) } } }
                tr { th { "Headers" } td {
                    @for (k, v) in &record.headers { div { code { (k) } ": " (text(v).unwrap_or_default()) } }
                } }
            }
            (confirmation(&action, &[
                ("partition", f.partition.as_deref().unwrap_or("")),
                ("key", f.key.as_deref().unwrap_or("")),
                ("value", f.value.as_deref().unwrap_or("")),
                ("headers", f.headers.as_deref().unwrap_or("")),
            ], "Produce", &format!("/topics/{name}")))
        };
        return page(&format!("Produce to {name}"), body).into_response();
    }
    let client = match kafka(&admin, &broker).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    // Idempotent, so a retry after a lost answer cannot write the record
    // twice; and partitioned by the topic's current partition count, not a
    // count cached before someone added partitions.
    let config = ProducerConfig {
        linger: Duration::ZERO,
        request_timeout: Duration::from_secs(10),
        ..ProducerConfig::default()
    };
    client.invalidate(&name);
    let producer = match Producer::new(client, config).await {
        Ok(p) => p,
        Err(e) => return failed(&e),
    };
    let sent = match producer.send(record).await {
        Ok(delivery) => delivery.await,
        Err(e) => {
            producer.close().await;
            return failed(&e);
        }
    };
    producer.close().await;
    let written = match sent {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => return failed(&e),
        Err(_) => {
            return problem(
                StatusCode::BAD_GATEWAY,
                "Not acknowledged",
                "the producer stopped before the record was acknowledged",
            )
        }
    };
    // Redirected, so reloading the answer cannot post the record again.
    Redirect::to(&format!(
        "/topics/{name}/produced?partition={}&offset={}",
        written.partition, written.offset
    ))
    .into_response()
}

#[derive(serde::Deserialize)]
pub struct Written {
    partition: Option<i32>,
    offset: Option<i64>,
}

/// Where a produce from the console landed.
pub async fn produced(Path(name): Path<String>, Query(w): Query<Written>) -> Response {
    let (Some(partition), Some(offset)) = (w.partition, w.offset) else {
        return refused("which partition and offset?");
    };
    let body = html! {
        h1 { "Produced" }
        p id="produced" {
            "Written to partition " (partition) " at offset " (offset) "."
        }
        p {
            a href={ "/topics/" (segment(&name)) "/messages?partition=" (partition) "&from=offset&offset=" (offset) } id="browse-written" { "Show it" }
            " · " a href={ "/topics/" (segment(&name)) "/produce" } { "Produce another" }
        }
    };
    page(&format!("Produced to {name}"), body).into_response()
}

// ---- reset a group's offsets ---------------------------------------------

#[derive(serde::Deserialize)]
pub struct Reset {
    topic: Option<String>,
    to: Option<String>,
    value: Option<String>,
    /// On the confirming post: the dry run's offsets,
    /// `topic:partition:offset` joined by commas (topic names cannot hold
    /// either character).
    plan: Option<String>,
    /// On the confirming post: the committed offsets the dry run saw for
    /// the plan's partitions, encoded as `plan` (partitions without one
    /// left out). A group whose offsets moved since is not reset.
    was: Option<String>,
    confirm: Option<String>,
}

fn encode_offsets(offsets: &BTreeMap<TopicPartition, i64>) -> String {
    offsets
        .iter()
        .map(|((t, p), o)| format!("{t}:{p}:{o}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_plan(text: &str) -> Result<BTreeMap<TopicPartition, i64>, String> {
    let plan = parse_offsets(text)?;
    if plan.is_empty() {
        return Err("the plan names no partition".to_string());
    }
    Ok(plan)
}

fn parse_offsets(text: &str) -> Result<BTreeMap<TopicPartition, i64>, String> {
    let mut plan = BTreeMap::new();
    for entry in text.split(',').filter(|e| !e.is_empty()) {
        let mut parts = entry.rsplitn(3, ':');
        let (Some(offset), Some(partition), Some(topic)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("plan entry {entry}: not topic:partition:offset"));
        };
        let (Ok(partition), Ok(offset)) = (partition.parse::<i32>(), offset.parse::<i64>()) else {
            return Err(format!("plan entry {entry}: not topic:partition:offset"));
        };
        if partition < 0 || offset < 0 {
            return Err(format!("plan entry {entry}: negative"));
        }
        plan.insert((topic.to_string(), partition), offset);
        if plan.len() > RESET_PARTITIONS_MAX {
            return Err(format!("more than {RESET_PARTITIONS_MAX} partitions"));
        }
    }
    Ok(plan)
}

/// The dry run: each partition's new offset, moved into its log's range as
/// `kafka-consumer-groups.sh --reset-offsets` does. `Err` names what is
/// wrong with the request.
async fn reset_plan(
    kafka: &KafkaAdmin,
    broker: &Broker,
    f: &Reset,
    committed: &BTreeMap<TopicPartition, i64>,
) -> Result<BTreeMap<TopicPartition, i64>, String> {
    let tps: Vec<TopicPartition> = match field(&f.topic) {
        None => committed.keys().cloned().collect(),
        Some(t) => {
            let topic = broker.topic(t).ok_or(format!("there is no topic {t}"))?;
            (0..topic.partitions.len() as i32)
                .map(|p| (t.to_string(), p))
                .collect()
        }
    };
    if tps.is_empty() {
        return Err("the group has no committed offsets: choose a topic".to_string());
    }
    let earliest = log_ends(kafka, tps.clone(), OffsetSpec::Earliest).await;
    let latest = log_ends(kafka, tps.clone(), OffsetSpec::Latest).await;
    let value = field(&f.value);
    let number = || -> Result<i64, String> {
        let v = value.ok_or("give the offset or the shift")?;
        v.parse::<i64>()
            .map_err(|_| format!("{v}: not a whole number"))
    };
    let to = field(&f.to).unwrap_or("earliest");
    let timed = if to == "timestamp" {
        let v = value.ok_or("give the time")?;
        let ts = parse_utc(v).ok_or(format!(
            "time {v}: write YYYY-MM-DDTHH:MM[:SS[.mmm]] (UTC) or epoch milliseconds"
        ))?;
        log_ends(kafka, tps.clone(), OffsetSpec::Timestamp(ts)).await
    } else {
        BTreeMap::new()
    };
    let mut plan = BTreeMap::new();
    for tp in tps {
        let (Some(lo), Some(hi)) = (earliest.get(&tp).copied(), latest.get(&tp).copied()) else {
            return Err(format!(
                "partition {}-{} has no leader to ask for its offsets",
                tp.0, tp.1
            ));
        };
        let hi = hi.max(lo);
        let offset = match to {
            "earliest" => lo,
            "latest" => hi,
            "offset" => number()?.clamp(lo, hi),
            // As Kafka's tool: a shift needs an offset to shift from.
            "shift" => {
                let Some(current) = committed.get(&tp) else {
                    return Err(format!(
                        "cannot shift the offset of {}-{}: the group has no committed offset there",
                        tp.0, tp.1
                    ));
                };
                current.saturating_add(number()?).clamp(lo, hi)
            }
            // No record at or after the time: the log end, as Kafka's tool.
            "timestamp" => match timed.get(&tp) {
                Some(o) if *o >= 0 => (*o).clamp(lo, hi),
                _ => hi,
            },
            other => {
                return Err(format!(
                    "reset to {other}: earliest, latest, offset, timestamp or shift"
                ))
            }
        };
        plan.insert(tp, offset);
    }
    Ok(plan)
}

/// Checks a confirmed plan against the cluster as it is now: every
/// partition exists and every offset is still inside its log (retention
/// may have moved the start since the dry run).
async fn still_in_range(
    kafka: &KafkaAdmin,
    broker: &Broker,
    plan: &BTreeMap<TopicPartition, i64>,
) -> Result<(), String> {
    for (t, p) in plan.keys() {
        let known = broker
            .topic(t)
            .is_some_and(|topic| usize::try_from(*p).is_ok_and(|p| p < topic.partitions.len()));
        if !known {
            return Err(format!("there is no partition {t}-{p}: nothing was reset"));
        }
    }
    let earliest = log_ends(kafka, plan.keys().cloned(), OffsetSpec::Earliest).await;
    let latest = log_ends(kafka, plan.keys().cloned(), OffsetSpec::Latest).await;
    for (tp, o) in plan {
        match (earliest.get(tp), latest.get(tp)) {
            (Some(lo), Some(hi)) if (*lo..=(*hi).max(*lo)).contains(o) => {}
            (Some(lo), Some(hi)) => {
                return Err(format!(
                    "offset {o} of {}-{} is no longer in its log ({lo} to {hi}): nothing was reset; run the dry run again",
                    tp.0, tp.1
                ))
            }
            _ => {
                return Err(format!(
                    "partition {}-{} has no leader to ask for its offsets: nothing was reset",
                    tp.0, tp.1
                ))
            }
        }
    }
    Ok(())
}

pub async fn reset_offsets(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<Reset>,
) -> Response {
    let broker = match writable(&admin, &headers) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let client = match kafka(&admin, &broker).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let kafka = KafkaAdmin::new(client);
    let back = format!("/groups/{}", segment(&id));
    // Kafka resets only a group without members: a member would commit
    // over the reset at once.
    match kafka.describe_any_group(&id).await {
        Ok(d) if matches!(d.state.as_str(), "Empty" | "Dead") => {}
        Ok(d) => {
            return problem(
                StatusCode::CONFLICT,
                "Group is active",
                &format!(
                    "Offsets can be reset only while the group has no members; {id} is {}.",
                    d.state
                ),
            )
        }
        Err(e) => return failed(&e),
    }
    let committed = match kafka.group_offsets(&id).await {
        Ok(c) => c,
        Err(e) => return failed(&e),
    };
    if confirmed(&f.confirm) {
        let (plan, was) = match (
            parse_plan(f.plan.as_deref().unwrap_or("")),
            parse_offsets(f.was.as_deref().unwrap_or("")),
        ) {
            (Ok(plan), Ok(was)) => (plan, was),
            (Err(why), _) | (_, Err(why)) => return refused(why),
        };
        // What the dry run showed is what is committed, or nothing is.
        let now: BTreeMap<TopicPartition, i64> = committed
            .iter()
            .filter(|(tp, _)| plan.contains_key(*tp))
            .map(|(tp, o)| (tp.clone(), *o))
            .collect();
        if now != was {
            return problem(
                StatusCode::CONFLICT,
                "Offsets moved",
                "The group's committed offsets changed since the dry run: nothing was reset. Run the dry run again.",
            );
        }
        if let Err(why) = still_in_range(&kafka, &broker, &plan).await {
            return refused(why);
        }
        if let Err(e) = kafka.alter_group_offsets(&id, &plan).await {
            return failed(&e);
        }
        return Redirect::to(&back).into_response();
    }
    let plan = match reset_plan(&kafka, &broker, &f, &committed).await {
        Ok(p) => p,
        Err(why) => return refused(why),
    };
    let encoded = encode_offsets(&plan);
    let was = encode_offsets(
        &committed
            .iter()
            .filter(|(tp, _)| plan.contains_key(*tp))
            .map(|(tp, o)| (tp.clone(), *o))
            .collect(),
    );
    let body = html! {
        h1 { "Reset offsets of " code { (id) } "? (dry run)" }
        p { "Nothing has changed yet. With confirmation, the group's committed offsets become:" }
        table id="plan" {
            tr { th { "Topic" } th { "Partition" } th { "Committed now" } th { "New offset" } }
            @for ((t, p), o) in &plan {
                tr {
                    td { (t) } td.num { (p) }
                    td.num { @if let Some(c) = committed.get(&(t.clone(), *p)) { (c) } @else { span.muted { "none" } } }
                    td.num { (o) }
                }
            }
        }
        (confirmation(&format!("{back}/reset"), &[("plan", &encoded), ("was", &was)], "Reset offsets", &back))
    };
    page(&format!("Reset {id}"), body).into_response()
}

// ---- delete a group ------------------------------------------------------

#[derive(serde::Deserialize)]
pub struct DeleteGroup {
    confirm: Option<String>,
}

pub async fn delete_group(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<DeleteGroup>,
) -> Response {
    let broker = match writable(&admin, &headers) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let back = format!("/groups/{}", segment(&id));
    if !confirmed(&f.confirm) {
        // Kafka refuses while the group has members: say so now rather
        // than after the confirmation.
        let client = match kafka(&admin, &broker).await {
            Ok(c) => c,
            Err(r) => return r,
        };
        match KafkaAdmin::new(client).describe_any_group(&id).await {
            Ok(d) if !d.members.is_empty() => {
                return problem(
                    StatusCode::CONFLICT,
                    "Group is active",
                    &format!(
                        "{id} has {} members: a group is deleted only once it has none.",
                        d.members.len()
                    ),
                )
            }
            Ok(_) => {}
            Err(e) => return failed(&e),
        }
        let body = html! {
            h1 { "Delete group " code { (id) } "?" }
            p.notice { "The group and all its committed offsets are deleted. This cannot be undone." }
            (confirmation(&format!("{back}/delete"), &[], "Delete group", &back))
        };
        return page(&format!("Delete {id}"), body).into_response();
    }
    let client = match kafka(&admin, &broker).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match KafkaAdmin::new(client)
        .delete_groups(std::slice::from_ref(&id))
        .await
    {
        Ok(results) => {
            if let Some((_, Err(e))) = results.into_iter().next() {
                return refused(e.text());
            }
        }
        Err(e) => return failed(&e),
    }
    Redirect::to("/groups").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_plan_round_trips_and_bad_entries_are_refused() {
        let plan = parse_plan("orders:0:5,orders:1:0,a.b-c_d:12:7").unwrap();
        assert_eq!(
            plan.into_iter().collect::<Vec<_>>(),
            [
                (("a.b-c_d".to_string(), 12), 7),
                (("orders".to_string(), 0), 5),
                (("orders".to_string(), 1), 0)
            ]
        );
        for bad in ["", "orders:0", "orders:x:1", "orders:0:-1", "orders:-1:0"] {
            assert!(parse_plan(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_produce_form_becomes_one_record() {
        let f = Produce {
            partition: Some("1".into()),
            key: Some("k".into()),
            value: Some("v\r\nw".into()),
            headers: Some("source: console\n\ntrace-id:  a:b\n".into()),
            confirm: None,
        };
        let r = record("t", 2, &f).unwrap();
        assert_eq!(r.partition, Some(1));
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"v\nw"[..]));
        assert_eq!(
            r.headers,
            [
                ("source".to_string(), Some(Bytes::from_static(b"console"))),
                ("trace-id".to_string(), Some(Bytes::from_static(b"a:b")))
            ]
        );
        let no_key = Produce {
            key: Some(String::new()),
            ..Produce::default()
        };
        assert_eq!(record("t", 1, &no_key).unwrap().key, None);
        for (bad, why) in [
            (
                Produce {
                    partition: Some("2".into()),
                    ..Produce::default()
                },
                "partitions 0 to 1",
            ),
            (
                Produce {
                    headers: Some("no colon".into()),
                    ..Produce::default()
                },
                "name: value",
            ),
        ] {
            assert!(record("t", 2, &bad).unwrap_err().contains(why));
        }
    }

    #[test]
    fn a_create_form_becomes_one_new_topic() {
        let f = CreateTopic {
            name: Some(" orders ".into()),
            partitions: Some("3".into()),
            replication_factor: Some(String::new()),
            configs: Some("cleanup.policy=compact\n# a comment\n\nretention.ms = 1000\n".into()),
            confirm: None,
        };
        let t = new_topic(&f).unwrap();
        assert_eq!(
            (t.name.as_str(), t.partitions, t.replication_factor),
            ("orders", 3, -1)
        );
        assert_eq!(
            t.configs,
            [
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("retention.ms".to_string(), "1000".to_string())
            ]
        );
        for (bad, why) in [
            (CreateTopic::default(), "name"),
            (
                CreateTopic {
                    name: Some("t".into()),
                    partitions: Some("0".into()),
                    ..CreateTopic::default()
                },
                "1 or more",
            ),
            (
                CreateTopic {
                    name: Some("t".into()),
                    replication_factor: Some("40000".into()),
                    ..CreateTopic::default()
                },
                "too large",
            ),
            (
                CreateTopic {
                    name: Some("t".into()),
                    configs: Some("x".into()),
                    ..CreateTopic::default()
                },
                "name=value",
            ),
        ] {
            assert!(new_topic(&bad).unwrap_err().contains(why));
        }
    }
}
