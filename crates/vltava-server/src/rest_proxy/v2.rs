//! Confluent REST Proxy's v2 consumer API: a consumer instance is made in
//! a group (`POST /consumers/{group}`), subscribes to topics, fetches
//! records (`GET .../records`, joining the group on the first fetch as a
//! Java consumer joins on its first poll), commits and is deleted. Records
//! come back in the instance's format: `binary` (base64), `json`, or
//! `avro` / `jsonschema` / `protobuf` decoded through the schema registry.
//!
//! An instance is a group member of its own (a vltava-client
//! `GroupMember` and `Consumer` over the proxy's client); one request uses
//! it at a time. Committing offsets takes the offset of the last record
//! consumed and commits the one after it, as Confluent's proxy does.
//! Instances unused for `rest.proxy.consumer.instance.timeout.ms` are
//! closed (they leave their group); at most [`CONSUMER_INSTANCES_MAX`]
//! exist at once.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use vltava_client::consumer::{
    Consumer, ConsumerConfig, ConsumerRecord, OffsetSpec, TopicPartition,
};
use vltava_client::group::{GroupConfig, GroupMember, Heartbeat};

use super::{
    answer, json_body, Answer, BaseUrl, RecordFormat as Format, RestError, RestProxy,
    V2_CONTENT_TYPE,
};

/// Consumer instances at once, over all groups.
pub const CONSUMER_INSTANCES_MAX: usize = 1_000;

/// The longest `timeout` a records request may ask for.
pub const RECORDS_WAIT_MAX: Duration = Duration::from_secs(30);

/// What a records request waits for records by default
/// (Confluent's `consumer.request.timeout.ms`).
const RECORDS_WAIT_DEFAULT: Duration = Duration::from_millis(1_000);

/// The most bytes (keys and values) one records answer carries, and the
/// default (Confluent's `consumer.request.max.bytes`).
pub const RECORDS_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Instance names and group ids: at most this many bytes.
const NAME_BYTES_MAX: usize = 255;

/// How often an instance between requests checks whether a heartbeat is
/// due.
const HEARTBEAT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How long closing an instance waits for its LeaveGroup.
const LEAVE_PATIENCE: Duration = Duration::from_secs(5);

/// How often idle instances are looked for.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);

/// One consumer instance.
struct Instance {
    group: String,
    format: Format,
    client: vltava_client::Client,
    consumer: Consumer,
    /// The group member, once subscribed; joined on the first fetch.
    member: Option<GroupMember>,
    joined: bool,
    topics: Vec<String>,
    /// A `topic_pattern` subscription, whose topics are listed again while
    /// the instance reads.
    pattern: Option<Pattern>,
    /// Records fetched and not yet handed out.
    pending: VecDeque<ConsumerRecord>,
    /// The next offset after the last record handed out, per partition.
    consumed: BTreeMap<TopicPartition, i64>,
    auto_commit: bool,
    /// Reading partitions assigned by the client, not by the group.
    manual: bool,
    last_used: Instant,
}

type Shared = Arc<tokio::sync::Mutex<Instance>>;

/// A `topic_pattern` subscription: the expression and when the topics it
/// matches were last listed.
struct Pattern {
    regex: regex::Regex,
    listed: Instant,
}

/// Every instance by (group, name).
#[derive(Default)]
pub struct Instances {
    map: std::sync::Mutex<BTreeMap<(String, String), Shared>>,
}

impl Instances {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Shared>> {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, group: &str, name: &str) -> Result<Shared, RestError> {
        self.lock()
            .get(&(group.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| RestError::not_found(40403, "Consumer instance not found.").v2())
    }

    /// Removes `key` if it is still `instance` (not a new one of the same
    /// name).
    fn remove_if_same(&self, key: &(String, String), instance: &Shared) -> bool {
        let mut map = self.lock();
        if map
            .get(key)
            .is_some_and(|found| Arc::ptr_eq(found, instance))
        {
            map.remove(key);
            return true;
        }
        false
    }

    /// Leaves every group (shutdown).
    pub async fn close_all(&self) {
        let all: Vec<Shared> = std::mem::take(&mut *self.lock()).into_values().collect();
        for instance in all {
            close(&instance).await;
        }
    }
}

async fn close(instance: &Shared) {
    let mut i = instance.lock().await;
    if let Some(m) = i.member.as_mut() {
        let _ = tokio::time::timeout(LEAVE_PATIENCE, m.leave()).await;
    }
    i.member = None;
}

/// Heartbeats for an instance between its requests (as the Java
/// consumer's background thread does), so a client that fetches less often
/// than the session timeout keeps its partitions. A rebalance is left to
/// the next fetch, which joins again. Ends with the instance.
async fn keep_alive(instance: std::sync::Weak<tokio::sync::Mutex<Instance>>) {
    loop {
        tokio::time::sleep(HEARTBEAT_CHECK_INTERVAL).await;
        let Some(instance) = instance.upgrade() else {
            return;
        };
        // A request in hand heartbeats itself.
        let Ok(mut i) = instance.try_lock() else {
            continue;
        };
        if !i.joined {
            continue;
        }
        let beat = match i.member.as_mut() {
            Some(m) => m.heartbeat_if_due().await,
            None => continue,
        };
        if !matches!(beat, Ok(Heartbeat::Fine)) {
            i.joined = false;
        }
    }
}

/// Closes instances unused past the configured timeout, until `shutdown`.
pub async fn expire_idle(proxy: Arc<RestProxy>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EXPIRY_INTERVAL) => {}
        }
        let Ok(broker) = proxy.broker() else { continue };
        let timeout = broker.config.rest_proxy_consumer_instance_timeout;
        let candidates: Vec<((String, String), Shared)> = proxy
            .consumers
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, instance) in candidates {
            // An instance in use is not idle; one found idle is taken out of
            // the map while its lock is held, so no request picks it up in
            // between.
            let Ok(i) = instance.try_lock() else { continue };
            if i.last_used.elapsed() < timeout {
                continue;
            }
            let removed = proxy.consumers.remove_if_same(&key, &instance);
            drop(i);
            if removed {
                info!(
                    group = key.0,
                    instance = key.1,
                    "closed an idle REST consumer instance"
                );
                tokio::spawn(async move { close(&instance).await });
            }
        }
    }
}

pub fn routes() -> Router<Arc<RestProxy>> {
    let i = "/consumers/{group}/instances/{instance}";
    Router::new()
        .route("/consumers/{group}", post(create))
        .route(i, axum::routing::delete(delete))
        .route(
            &format!("{i}/subscription"),
            post(subscribe).get(subscription).delete(unsubscribe),
        )
        .route(&format!("{i}/assignments"), get(assignments).post(assign))
        .route(&format!("{i}/positions"), post(seek))
        .route(&format!("{i}/records"), get(records))
        .route(&format!("{i}/offsets"), post(commit).get(committed))
        .route(&format!("{i}/positions/beginning"), post(to_beginning))
        .route(&format!("{i}/positions/end"), post(to_end))
}

fn v2_ok(value: Value) -> Answer {
    Ok(answer(StatusCode::OK, V2_CONTENT_TYPE, &value))
}

fn no_content() -> Answer {
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn bad(message: impl Into<String>) -> RestError {
    RestError::bad_request(message).v2()
}

fn name_checked(what: &str, name: &str) -> Result<(), RestError> {
    if name.is_empty() || name.len() > NAME_BYTES_MAX || name.chars().any(char::is_control) {
        return Err(RestError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42204,
            format!("the {what} must be 1 to {NAME_BYTES_MAX} bytes without control characters"),
        )
        .v2());
    }
    Ok(())
}

/// `{"name"?, "format"?, "auto.offset.reset"?, "auto.commit.enable"?}`:
/// `{"instance_id", "base_uri"}`.
async fn create(
    State(p): State<Arc<RestProxy>>,
    BaseUrl(base): BaseUrl,
    Path(group): Path<String>,
    body: Bytes,
) -> Answer {
    name_checked("group id", &group)?;
    let body = if body.is_empty() {
        json!({})
    } else {
        json_body(&body).map_err(RestError::v2)?
    };
    let text = |k: &str| body[k].as_str().map(str::to_string);
    let name = text("name").unwrap_or_else(|| format!("rest-consumer-{}", uuid::Uuid::new_v4()));
    name_checked("instance name", &name)?;
    let format = match text("format") {
        None => Format::Binary,
        Some(f) => Format::parse(&f).ok_or_else(|| {
            RestError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                42204,
                format!("format {f} is not one of binary, json, avro, jsonschema, protobuf"),
            )
            .v2()
        })?,
    };
    let reset = match text("auto.offset.reset").as_deref() {
        None | Some("latest") => OffsetSpec::Latest,
        Some("earliest") => OffsetSpec::Earliest,
        Some(other) => {
            return Err(RestError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                42204,
                format!("auto.offset.reset={other} is not earliest or latest"),
            )
            .v2())
        }
    };
    let auto_commit = match &body["auto.commit.enable"] {
        Value::Null => true,
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => return Err(bad("auto.commit.enable is true or false")),
    };
    let (_, client) = p.client().await.map_err(RestError::v2)?;
    let config = ConsumerConfig {
        auto_offset_reset: reset,
        ..ConsumerConfig::default()
    };
    let instance = Instance {
        group: group.clone(),
        format,
        client: client.clone(),
        consumer: Consumer::new(client, config),
        member: None,
        joined: false,
        topics: Vec::new(),
        pattern: None,
        pending: VecDeque::new(),
        consumed: BTreeMap::new(),
        auto_commit,
        manual: false,
        last_used: Instant::now(),
    };
    {
        let mut map = p.consumers.lock();
        let key = (group.clone(), name.clone());
        if map.contains_key(&key) {
            return Err(RestError::new(
                StatusCode::CONFLICT,
                40902,
                "Consumer instance with the specified name already exists.",
            )
            .v2());
        }
        if map.len() >= CONSUMER_INSTANCES_MAX {
            return Err(RestError::new(
                StatusCode::TOO_MANY_REQUESTS,
                42901,
                format!("{CONSUMER_INSTANCES_MAX} consumer instances exist; delete some first"),
            )
            .v2());
        }
        let shared = Arc::new(tokio::sync::Mutex::new(instance));
        tokio::spawn(keep_alive(Arc::downgrade(&shared)));
        map.insert(key, shared);
    }
    debug!(
        group,
        name,
        format = format.name(),
        "REST consumer instance created"
    );
    v2_ok(json!({
        "instance_id": name,
        "base_uri": format!(
            "{base}/consumers/{}/instances/{}",
            crate::http_client::path_segment(&group),
            crate::http_client::path_segment(&name)
        ),
    }))
}

async fn delete(
    State(p): State<Arc<RestProxy>>,
    Path((group, name)): Path<(String, String)>,
) -> Answer {
    let instance = p.consumers.get(&group, &name)?;
    p.consumers.remove_if_same(&(group, name), &instance);
    close(&instance).await;
    no_content()
}

/// `{"topics": [...]}` or `{"topic_pattern": REGEX}`.
async fn subscribe(
    State(p): State<Arc<RestProxy>>,
    Path((group, name)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let instance = p.consumers.get(&group, &name)?;
    let body = json_body(&body).map_err(RestError::v2)?;
    let (topics, pattern) = match body["topic_pattern"].as_str() {
        Some(text) => {
            let regex = topic_pattern(text)?;
            let topics = matching_topics(&p, &regex).await?;
            let listed = Instant::now();
            (topics, Some(Pattern { regex, listed }))
        }
        None => {
            let topics = body["topics"]
                .as_array()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| bad("topics is a non-empty list of topic names, or topic_pattern a regular expression"))?
                .iter()
                .map(|t| {
                    t.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad("topic names are strings"))
                })
                .collect::<Result<_, _>>()?;
            (topics, None)
        }
    };
    let mut i = instance.lock().await;
    i.last_used = Instant::now();
    if i.manual {
        return Err(exclusive());
    }
    if let Some(m) = i.member.as_mut() {
        let _ = m.leave().await;
    }
    let member = GroupMember::new(i.client.clone(), GroupConfig::new(&group), topics.clone());
    i.member = Some(member);
    i.joined = false;
    i.topics = topics;
    i.pattern = pattern;
    i.pending.clear();
    i.consumed.clear();
    i.consumer.assign(Vec::new());
    no_content()
}

/// The longest `topic_pattern` taken, and the most memory its compiled
/// form may use.
const TOPIC_PATTERN_CHARS_MAX: usize = 1_000;
const TOPIC_PATTERN_BYTES_MAX: usize = 1 << 20;

/// How often a pattern subscription lists the topics again while its
/// instance reads, so topics made (or deleted) later join (or leave) it.
/// The Java consumer does this at each metadata refresh
/// (`metadata.max.age.ms`, 5 minutes by default); a listing is one
/// metadata request, so the proxy looks far more often.
pub const TOPIC_PATTERN_RELIST_INTERVAL: Duration = Duration::from_secs(3);

/// `text` compiled to match whole topic names, as Java's
/// `Pattern.matches` does.
fn topic_pattern(text: &str) -> Result<regex::Regex, RestError> {
    if text.chars().count() > TOPIC_PATTERN_CHARS_MAX {
        return Err(bad(format!(
            "topic_pattern is longer than {TOPIC_PATTERN_CHARS_MAX} characters"
        )));
    }
    regex::RegexBuilder::new(&format!("^(?:{text})$"))
        .size_limit(TOPIC_PATTERN_BYTES_MAX)
        .build()
        .map_err(|e| bad(format!("topic_pattern is not a regular expression: {e}")))
}

/// The topics (not internal ones) `regex` matches, sorted. None is no
/// error: as with the Java consumer, the instance is assigned nothing
/// until a matching topic is made.
async fn matching_topics(p: &RestProxy, regex: &regex::Regex) -> Result<Vec<String>, RestError> {
    let (_, admin) = p.kafka_admin().await.map_err(RestError::v2)?;
    let mut topics: Vec<String> = admin
        .list_topics()
        .await
        .map_err(|e| RestError::from_client(&e).v2())?
        .into_iter()
        .filter(|t| !t.is_internal && regex.is_match(&t.name))
        .map(|t| t.name)
        .collect();
    topics.sort();
    Ok(topics)
}

/// Lists a pattern subscription's topics again when it is due, and has
/// the instance join again when they changed.
async fn relist_pattern(p: &RestProxy, i: &mut Instance) {
    let Some(pattern) = i.pattern.as_mut() else {
        return;
    };
    if pattern.listed.elapsed() < TOPIC_PATTERN_RELIST_INTERVAL {
        return;
    }
    pattern.listed = Instant::now();
    // A listing that fails keeps the topics it had: the fetch goes on.
    let topics = match matching_topics(p, &pattern.regex).await {
        Ok(topics) => topics,
        Err(e) => {
            debug!(group = i.group, error = ?e, "REST consumer pattern not listed again");
            return;
        }
    };
    if topics == i.topics {
        return;
    }
    debug!(
        group = i.group,
        ?topics,
        "REST consumer pattern matches other topics"
    );
    if let Some(m) = i.member.as_mut() {
        m.set_topics(topics.clone());
    }
    i.topics = topics;
    i.joined = false;
}

fn exclusive() -> RestError {
    RestError::new(
        StatusCode::CONFLICT,
        40903,
        "Subscription to topics, partitions and pattern are mutually exclusive.",
    )
    .v2()
}

/// `{"partitions": [{"topic", "partition"}]}`: reads those partitions
/// without joining the group (committing under its id), each from the
/// group's committed offset, else `auto.offset.reset`.
async fn assign(
    State(p): State<Arc<RestProxy>>,
    Path((group, name)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let instance = p.consumers.get(&group, &name)?;
    let tps = partitions_of(&body)?;
    let mut i = instance.lock().await;
    i.last_used = Instant::now();
    if i.member.is_some() {
        return Err(exclusive());
    }
    let coordinator = vltava_client::group::find_coordinator(&i.client, &group)
        .await
        .map_err(|e| RestError::from_client(&e).v2())?;
    let committed = vltava_client::group::fetch_offsets(&i.client, coordinator, &group, Some(&tps))
        .await
        .map_err(|e| RestError::from_client(&e).v2())?;
    i.consumer.assign(tps.clone());
    for (tp, offset) in committed {
        i.consumer.seek(&tp, offset);
    }
    i.consumed.retain(|tp, _| tps.contains(tp));
    i.pending.clear();
    i.manual = !tps.is_empty();
    no_content()
}

/// `{"offsets": [{"topic", "partition", "offset"}]}`: the next fetch of
/// each (assigned) partition starts at that offset.
async fn seek(
    State(p): State<Arc<RestProxy>>,
    Path((group, name)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let instance = p.consumers.get(&group, &name)?;
    let wanted = offsets_of(&json_body(&body).map_err(RestError::v2)?["offsets"])?;
    let mut i = instance.lock().await;
    i.last_used = Instant::now();
    let assigned = i.consumer.assignment();
    if let Some((tp, _)) = wanted.iter().find(|(tp, _)| !assigned.contains(tp)) {
        return Err(RestError::new(
            StatusCode::CONFLICT,
            40903,
            format!(
                "{}-{} is not assigned to this consumer instance",
                tp.0, tp.1
            ),
        )
        .v2());
    }
    for (tp, offset) in &wanted {
        i.consumer.seek(tp, *offset);
    }
    i.pending.retain(|r| {
        !wanted
            .iter()
            .any(|(tp, _)| tp.0 == r.topic && tp.1 == r.partition)
    });
    no_content()
}

async fn subscription(
    State(p): State<Arc<RestProxy>>,
    Path((group, name)): Path<(String, String)>,
) -> Answer {
    let instance = p.consumers.get(&group, &name)?;
    let i = instance.lock().await;
    v2_ok(json!({"topics": i.topics}))
}

async fn unsubscribe(
    State(p): State<Arc<RestProxy>>,
    Path((group, name)): Path<(String, String)>,
) -> Answer {
    let instance = p.consumers.get(&group, &name)?;
    let mut i = instance.lock().await;
    if let Some(m) = i.member.as_mut() {
        let _ = m.leave().await;
    }
    i.member = None;
    i.joined = false;
    i.manual = false;
    i.topics.clear();
    i.pattern = None;
    i.pending.clear();
    i.consumed.clear();
    i.consumer.assign(Vec::new());
    no_content()
}

fn partitions_json(tps: &[TopicPartition]) -> Value {
    json!(tps
        .iter()
        .map(|(t, p)| json!({"topic": t, "partition": p}))
        .collect::<Vec<_>>())
}

async fn assignments(
    State(p): State<Arc<RestProxy>>,
    Path((group, name)): Path<(String, String)>,
) -> Answer {
    let instance = p.consumers.get(&group, &name)?;
    let i = instance.lock().await;
    v2_ok(json!({"partitions": partitions_json(&i.consumer.assignment())}))
}

/// Joins the group (again) and positions the consumer at the committed
/// offsets of its new assignment.
async fn join(i: &mut Instance) -> Result<(), RestError> {
    let Some(member) = i.member.as_mut() else {
        return Ok(());
    };
    let assignment = member
        .join()
        .await
        .map_err(|e| RestError::from_client(&e).v2())?;
    let committed = member
        .committed(&assignment)
        .await
        .map_err(|e| RestError::from_client(&e).v2())?;
    // Offsets of partitions another member now owns are not this
    // instance's to commit any more.
    i.consumed.retain(|tp, _| assignment.contains(tp));
    i.consumer.assign(assignment);
    for (tp, offset) in committed {
        i.consumer.seek(&tp, offset);
    }
    i.pending.clear();
    i.joined = true;
    Ok(())
}

#[derive(serde::Deserialize)]
struct RecordsQuery {
    timeout: Option<u64>,
    max_bytes: Option<usize>,
}

async fn records(
    State(p): State<Arc<RestProxy>>,
    Path((group, name)): Path<(String, String)>,
    Query(q): Query<RecordsQuery>,
) -> Answer {
    let instance = p.consumers.get(&group, &name)?;
    let mut i = instance.lock().await;
    i.last_used = Instant::now();
    if i.member.is_none() && !i.manual {
        return Err(RestError::new(
            StatusCode::CONFLICT,
            40903,
            "The consumer instance is not subscribed to any topic.",
        )
        .v2());
    }
    relist_pattern(&p, &mut i).await;
    if !i.joined && !i.manual {
        join(&mut i).await?;
    }
    let wait = q
        .timeout
        .map_or(RECORDS_WAIT_DEFAULT, Duration::from_millis)
        .min(RECORDS_WAIT_MAX);
    let max_bytes = q
        .max_bytes
        .unwrap_or(RECORDS_BYTES_MAX)
        .min(RECORDS_BYTES_MAX);
    let deadline = Instant::now() + wait;
    while i.pending.is_empty() {
        let beat = match i.member.as_mut() {
            Some(m) => m
                .heartbeat_if_due()
                .await
                .map_err(|e| RestError::from_client(&e).v2())?,
            None => Heartbeat::Fine,
        };
        if beat == Heartbeat::Rejoin {
            join(&mut i).await?;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, i.consumer.poll()).await {
            Ok(Ok(got)) => i.pending.extend(got),
            Ok(Err(e)) => return Err(RestError::from_client(&e).v2()),
            Err(_) => break,
        }
    }
    // Records up to max_bytes (at least one), each decoded before it
    // leaves `pending`: a record that cannot be decoded stays first in
    // line, the ones before it are answered, and alone it is the error
    // (the client moves past it with positions/end).
    let mut taken = Vec::new();
    let mut out = Vec::new();
    let mut schemas = SchemaCache::new();
    let mut bytes = 0usize;
    while let Some(r) = i.pending.front() {
        let size = r.key.as_ref().map_or(0, Bytes::len) + r.value.as_ref().map_or(0, Bytes::len);
        if !taken.is_empty() && bytes + size > max_bytes {
            break;
        }
        let key = field(&p, i.format, &r.key, &mut schemas).await;
        let value = field(&p, i.format, &r.value, &mut schemas).await;
        let (key, value) = match (key, value) {
            (Ok(k), Ok(v)) => (k, v),
            (Err(e), _) | (_, Err(e)) if taken.is_empty() => return Err(e),
            _ => break,
        };
        out.push(json!({
            "topic": r.topic,
            "key": key,
            "value": value,
            "partition": r.partition,
            "offset": r.offset,
        }));
        bytes += size;
        taken.extend(i.pending.pop_front());
    }
    for r in &taken {
        i.consumed
            .insert((r.topic.clone(), r.partition), r.offset + 1);
    }
    if i.auto_commit && !taken.is_empty() {
        let consumed = i.consumed.clone();
        if let Err(e) = commit_as(&mut i, &consumed).await {
            debug!(error = ?e, "REST consumer auto-commit failed");
        }
    }
    let content_type = i.format.content_type();
    Ok(answer(StatusCode::OK, content_type, &Value::Array(out)))
}

/// A key or value in the instance's format.
/// Schemas read for one request, by id: each read from the registry once.
type SchemaCache = std::collections::HashMap<i32, vltava_registry::schema::Parsed>;

async fn field(
    p: &RestProxy,
    format: Format,
    data: &Option<Bytes>,
    schemas: &mut SchemaCache,
) -> Result<Value, RestError> {
    let Some(data) = data else {
        return Ok(Value::Null);
    };
    let undecodable = |why: String| {
        RestError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            50002,
            format!("Error deserializing a record: {why}"),
        )
        .v2()
    };
    match format {
        Format::Binary => Ok(Value::from(
            base64::engine::general_purpose::STANDARD.encode(data),
        )),
        Format::Json => serde_json::from_slice(data).map_err(|e| undecodable(e.to_string())),
        Format::Schema(_) => {
            let (id, body) = vltava_registry::wire::schema_id(data)
                .ok_or_else(|| undecodable("Unknown magic byte!".to_string()))?;
            let schema = match schemas.entry(id) {
                std::collections::hash_map::Entry::Occupied(found) => found.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    let read = p.registry.parsed_by_id(id).await.map_err(|e| {
                        let (_, _, message) = e.parts();
                        undecodable(format!("schema {id}: {message}"))
                    })?;
                    slot.insert(read)
                }
            };
            let text = vltava_registry::wire::to_json(schema, body).map_err(undecodable)?;
            serde_json::from_str(&text).map_err(|e| undecodable(e.to_string()))
        }
    }
}

/// `{"offsets": [{"topic", "partition", "offset"}]}` commits the offset
/// after each given one; no body commits everything handed out.
async fn commit(
    State(p): State<Arc<RestProxy>>,
    Path((group, name)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let instance = p.consumers.get(&group, &name)?;
    let mut offsets = BTreeMap::new();
    let given = if body.is_empty() {
        Value::Null
    } else {
        json_body(&body).map_err(RestError::v2)?
    };
    let mut i = instance.lock().await;
    i.last_used = Instant::now();
    match given["offsets"] {
        Value::Null => offsets.extend(i.consumed.clone()),
        ref list => {
            for (tp, off) in offsets_of(list)? {
                offsets.insert(
                    tp,
                    off.checked_add(1)
                        .ok_or_else(|| bad("offset is out of range"))?,
                );
            }
        }
    }
    commit_as(&mut i, &offsets).await?;
    Ok(StatusCode::OK.into_response())
}

/// Commits `offsets` as the group member, or, manually assigned, under
/// the group's id without a generation (as a Java consumer that assigns).
async fn commit_as(
    i: &mut Instance,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> Result<(), RestError> {
    if let Some(member) = i.member.as_mut() {
        return member
            .commit(offsets)
            .await
            .map_err(|e| RestError::from_client(&e).v2());
    }
    if !i.manual {
        return Err(RestError::new(
            StatusCode::CONFLICT,
            40903,
            "The consumer instance is not subscribed to any topic.",
        )
        .v2());
    }
    if offsets.is_empty() {
        return Ok(());
    }
    let coordinator = vltava_client::group::find_coordinator(&i.client, &i.group)
        .await
        .map_err(|e| RestError::from_client(&e).v2())?;
    vltava_client::group::commit_offsets(&i.client, coordinator, &i.group, -1, "", offsets)
        .await
        .map_err(|e| RestError::from_client(&e).v2())
}

/// `{"partitions": [{"topic", "partition"}]}`: their committed offsets.
async fn committed(
    State(p): State<Arc<RestProxy>>,
    Path((group, name)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let instance = p.consumers.get(&group, &name)?;
    let tps = partitions_of(&body)?;
    let i = instance.lock().await;
    let coordinator = vltava_client::group::find_coordinator(&i.client, &group)
        .await
        .map_err(|e| RestError::from_client(&e).v2())?;
    let got = vltava_client::group::fetch_offsets(&i.client, coordinator, &group, Some(&tps))
        .await
        .map_err(|e| RestError::from_client(&e).v2())?;
    let offsets: Vec<Value> = got
        .iter()
        .map(|((t, part), o)| json!({"topic": t, "partition": part, "offset": o, "metadata": ""}))
        .collect();
    v2_ok(json!({"offsets": offsets}))
}

/// `[{"topic", "partition", "offset"}]`, offsets 0 and up.
fn offsets_of(list: &Value) -> Result<Vec<(TopicPartition, i64)>, RestError> {
    let shape = || bad("offsets is a list of {\"topic\", \"partition\", \"offset\"}");
    list.as_array()
        .ok_or_else(shape)?
        .iter()
        .map(|o| {
            let (Some(t), Some(part), Some(off)) = (
                o["topic"].as_str(),
                o["partition"].as_i64(),
                o["offset"].as_i64(),
            ) else {
                return Err(shape());
            };
            let part = i32::try_from(part).map_err(|_| bad("partition is out of range"))?;
            if off < 0 {
                return Err(bad("offset must be 0 or more"));
            }
            Ok(((t.to_string(), part), off))
        })
        .collect()
}

fn partitions_of(body: &Bytes) -> Result<Vec<TopicPartition>, RestError> {
    let body = json_body(body).map_err(RestError::v2)?;
    body["partitions"]
        .as_array()
        .ok_or_else(|| bad("partitions is a list of {\"topic\", \"partition\"}"))?
        .iter()
        .map(|x| match (x["topic"].as_str(), x["partition"].as_i64()) {
            (Some(t), Some(part)) => i32::try_from(part)
                .map(|part| (t.to_string(), part))
                .map_err(|_| bad("partition is out of range")),
            _ => Err(bad("each partition is {\"topic\", \"partition\"}")),
        })
        .collect()
}

async fn seek_all(
    p: &RestProxy,
    group: &str,
    name: &str,
    body: &Bytes,
    spec: OffsetSpec,
) -> Answer {
    let instance = p.consumers.get(group, name)?;
    let tps = partitions_of(body)?;
    let mut i = instance.lock().await;
    i.last_used = Instant::now();
    let assigned = i.consumer.assignment();
    for tp in &tps {
        if !assigned.contains(tp) {
            return Err(RestError::new(
                StatusCode::CONFLICT,
                40903,
                format!(
                    "{}-{} is not assigned to this consumer instance",
                    tp.0, tp.1
                ),
            )
            .v2());
        }
    }
    for tp in &tps {
        i.consumer.seek_to(tp, spec);
    }
    i.pending
        .retain(|r| !tps.contains(&(r.topic.clone(), r.partition)));
    no_content()
}

async fn to_beginning(
    State(p): State<Arc<RestProxy>>,
    Path((group, name)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    seek_all(&p, &group, &name, &body, OffsetSpec::Earliest).await
}

async fn to_end(
    State(p): State<Arc<RestProxy>>,
    Path((group, name)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    seek_all(&p, &group, &name, &body, OffsetSpec::Latest).await
}
