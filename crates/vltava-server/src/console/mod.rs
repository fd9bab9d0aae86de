//! The web console on the admin listener: server-rendered HTML (maud),
//! styles embedded in the binary, no scripts and nothing fetched from
//! elsewhere, so it works offline.
//!
//! - `/`: the cluster overview; `/topics` (paginated) and `/topics/{name}`
//!   (partitions, configs with their sources): this module;
//! - `/topics/{name}/messages`: the message browser (`messages`);
//! - `/groups` and `/groups/{id}`: consumer groups with their lag
//!   (`groups`);
//! - the write actions (create topic, add partitions, delete topic,
//!   produce, reset a group's offsets, delete a group): `actions`. Every
//!   one is a form posted twice: the first post shows what will happen
//!   (for a reset, the dry run's new offsets) and asks for confirmation,
//!   the second does it. `admin.console.read.only=true` hides them and
//!   refuses their posts with 403.
//!
//! The overview and topic pages read this broker's own state, as the
//! Kafka handlers do; a partition with no replica here shows the log start
//! and high watermark its leader gives. Everything else goes through a
//! Kafka client of the cluster (`Admin::kafka`): a write takes the same
//! path as any client's (controller, leader, coordinator), and offsets,
//! messages and groups come from the nodes that hold them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::admin::Admin;
/// Group ids and topic names in links: one URL path segment each.
use crate::http_client::path_segment as segment;

pub mod actions;
pub mod groups;
pub mod messages;

/// Topics on one page of `/topics`: 10,000 partitions stay fast.
pub const TOPICS_PER_PAGE: usize = 100;

/// Partitions on one page of a topic.
pub const PARTITIONS_PER_PAGE: usize = 500;

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1f3a5f;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.5rem;align-items:baseline}
header a{color:#fff;text-decoration:none}header .brand{font-weight:700;font-size:1.2rem}
main{padding:1rem 1.2rem}h1{font-size:1.3rem}h2{font-size:1.1rem;margin-top:1.5rem}
table{border-collapse:collapse;background:#fff;min-width:30rem}
th,td{border:1px solid #d5d9e0;padding:.3rem .6rem;text-align:left}th{background:#eef1f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{background:#fff;border:1px solid #d5d9e0;padding:.6rem 1rem}
.card b{display:block;font-size:1.4rem}.bad{color:#b3261e}.muted{color:#6b7280}
nav.pages{margin:.8rem 0;display:flex;gap:1rem}
form.inline{display:inline-block;margin:.3rem 1rem .3rem 0}
form.panel{background:#fff;border:1px solid #d5d9e0;padding:.6rem 1rem;margin:.6rem 0;display:flex;gap:.8rem;flex-wrap:wrap;align-items:end}
form.panel label{display:flex;flex-direction:column;font-size:.85rem;gap:.2rem}
input,select,textarea{font:inherit;padding:.2rem .3rem}textarea{font-family:ui-monospace,monospace}
button{font:inherit;padding:.25rem .8rem;cursor:pointer}button.danger{background:#b3261e;color:#fff;border:0}
pre{margin:0;white-space:pre-wrap;word-break:break-all;font-family:ui-monospace,monospace;font-size:.85rem}div.header pre{display:inline}
.notice{background:#fff8e1;border:1px solid #e0c060;padding:.5rem .8rem;margin:.6rem 0}
.error{background:#fdecea;border:1px solid #b3261e;padding:.5rem .8rem;margin:.6rem 0}
";

/// The answer while the broker is still opening.
fn starting() -> Response {
    let page = page(
        "Starting",
        html! { p { "The broker is still starting: recovering logs and catching up with the metadata quorum." } },
    );
    (StatusCode::SERVICE_UNAVAILABLE, page).into_response()
}

/// A page with the console's header and navigation.
fn page(title: &str, body: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Vltava" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a.brand href="/" { "Vltava" }
                    a href="/" { "Cluster" }
                    a href="/topics" { "Topics" }
                    a href="/groups" { "Consumer groups" }
                }
                main { (body) }
            }
        }
    };
    Html(markup.into_string())
}

/// A page saying what went wrong, with its HTTP status.
fn problem(status: StatusCode, title: &str, message: &str) -> Response {
    let body = html! { h1 { (title) } p.error { (message) } };
    (status, page(title, body)).into_response()
}

fn not_found(what: &str, message: &str) -> Response {
    problem(StatusCode::NOT_FOUND, what, message)
}

/// The console's Kafka client, or the page saying why there is none.
async fn kafka(
    admin: &Admin,
    broker: &vltava_broker::Broker,
) -> Result<vltava_client::Client, Response> {
    admin.kafka(broker).await.map_err(|e| {
        problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Cannot reach the cluster",
            &e,
        )
    })
}

/// Whether the console answers a request sent to `host` (the `Host`
/// header, port included). A page on an attacker's domain whose DNS name
/// is made to resolve to this listener (DNS rebinding) counts as the same
/// origin in the browser, so `Origin` checks cannot stop it: only the name
/// it was sent to shows it. IP literals cannot be rebound; `localhost` and
/// the `admin.listeners` hosts are this broker's; any other name must be
/// in `admin.console.allowed.hosts`.
fn allowed_host(config: &vltava_broker::BrokerConfig, host: Option<&str>) -> bool {
    let Some(host) = host else {
        // HTTP/1.0 tools send none; a browser always does.
        return true;
    };
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => {
            return rest
                .split(']')
                .next()
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
        }
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    }
    .to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name == "localhost"
        || config
            .admin_console_allowed_hosts
            .iter()
            .any(|h| h == "*" || *h == name)
        || config.admin_listeners.iter().any(|a| {
            a.rsplit_once(':')
                .is_some_and(|(h, _)| h.eq_ignore_ascii_case(&name))
        })
}

/// In front of every console route: refuses requests sent to a host name
/// the console does not answer to (see `allowed_host`), and serves at most
/// `CONSOLE_REQUESTS_MAX` at once. `/health`, `/ready` and `/metrics` are
/// not behind it (scrapers address brokers by name).
pub async fn host_guard(
    State(admin): State<Arc<Admin>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(broker) = admin.broker() {
        let host = request
            .headers()
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok());
        if !allowed_host(&broker.config, host) {
            return problem(
                StatusCode::FORBIDDEN,
                "Unknown host",
                &format!(
                    "This console does not answer to the host name {}: add it to admin.console.allowed.hosts.",
                    host.unwrap_or_default()
                ),
            );
        }
    }
    let Some(_turn) = admin.console_turn().await else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "The console is serving as many pages as it may at once; try again in a moment.",
        );
    };
    next.run(request).await
}

/// The broker and the topic a page is about, or the page saying why not
/// (still starting, no such topic).
fn topic_of(
    admin: &Admin,
    name: &str,
) -> Result<(Arc<vltava_broker::Broker>, Arc<vltava_broker::Topic>), Box<Response>> {
    let broker = admin.broker().ok_or_else(|| Box::new(starting()))?;
    match broker.topic(name) {
        Some(topic) => Ok((broker, topic)),
        None => Err(Box::new(not_found(
            "No such topic",
            &format!("There is no topic {name}."),
        ))),
    }
}

/// As [`topic_of`], for a write action: [`writable`] first.
fn writable_topic(
    admin: &Admin,
    headers: &HeaderMap,
    name: &str,
) -> Result<(Arc<vltava_broker::Broker>, Arc<vltava_broker::Topic>), Box<Response>> {
    writable(admin, headers)?;
    topic_of(admin, name)
}

/// The broker and an admin client of the cluster, or the page saying why
/// not (still starting, the cluster unreachable).
async fn cluster(
    admin: &Admin,
) -> Result<(Arc<vltava_broker::Broker>, vltava_client::admin::Admin), Response> {
    let broker = admin.broker().ok_or_else(starting)?;
    let client = kafka(admin, &broker).await?;
    Ok((broker, vltava_client::admin::Admin::new(client)))
}

/// Lets a write action through, or answers why not: the broker is still
/// opening, the console is read-only, or the form was posted from another
/// site. A browser sends `Origin` with every form post; a page elsewhere
/// that posts here (cross-site request forgery) names its own origin.
fn writable(
    admin: &Admin,
    headers: &HeaderMap,
) -> Result<Arc<vltava_broker::Broker>, Box<Response>> {
    let Some(broker) = admin.broker() else {
        return Err(Box::new(starting()));
    };
    if admin.read_only() {
        return Err(Box::new(problem(
            StatusCode::FORBIDDEN,
            "Read-only console",
            "This console is read-only (admin.console.read.only=true): it changes nothing.",
        )));
    }
    if !same_origin(headers) {
        return Err(Box::new(problem(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was posted from another site; post it from the console itself.",
        )));
    }
    Ok(broker)
}

/// True unless the request names an origin other than the host it was
/// sent to (`Origin` against `Host`), or the browser says it is
/// cross-site (`Sec-Fetch-Site`). Tools that send neither are let through.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if text("sec-fetch-site") == Some("cross-site") {
        return false;
    }
    match (text("origin"), text("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    }
}

/// The hidden fields and button that repeat a posted form with its
/// confirmation, and the way back.
fn confirmation(action: &str, fields: &[(&str, &str)], button: &str, back: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            @for (name, value) in fields {
                input type="hidden" name=(name) value=(value);
            }
            input type="hidden" name="confirm" value="yes";
            button.danger type="submit" id="confirm" { (button) }
        }
        a href=(back) id="cancel" { "Cancel" }
    }
}

/// Epoch milliseconds as `YYYY-MM-DD HH:MM:SS.mmm UTC`.
fn utc(ms: i64) -> String {
    let (year, month, day, h, min, sec, millis) = vltava_client::calendar::utc_fields(ms);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{min:02}:{sec:02}.{millis:03} UTC")
}

/// A partition number typed in a form, checked against the topic's
/// `partitions`.
fn partition_field(text: &str, partitions: usize) -> Result<i32, String> {
    text.parse::<i32>()
        .ok()
        .filter(|p| *p >= 0 && (*p as usize) < partitions)
        .ok_or(format!(
            "partition {text}: the topic has partitions 0 to {}",
            partitions.saturating_sub(1)
        ))
}

/// `YYYY-MM-DDTHH:MM[:SS[.mmm]]` (what a `datetime-local` input sends;
/// read as UTC, with an optional trailing `Z`) or epoch milliseconds.
pub(crate) fn parse_utc(text: &str) -> Option<i64> {
    let text = text.trim();
    // Negative numbers are ListOffsets' special values (-1 latest, -2
    // earliest, -3 the largest timestamp), not times.
    if let Ok(ms) = text.parse::<i64>() {
        return (ms >= 0).then_some(ms);
    }
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (date, time) = text.split_once(['T', ' '])?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, millis) = match time.split_once('.') {
        Some((hms, frac)) if !frac.is_empty() && frac.len() <= 3 => {
            (hms, format!("{frac:0<3}").parse::<i64>().ok()?)
        }
        Some(_) => return None,
        None => (time, 0),
    };
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next().unwrap_or(Some(0))?);
    // Years of four digits: no arithmetic below can overflow.
    let valid = t.next().is_none()
        && (0..=9_999).contains(&y)
        && (1..=12).contains(&m)
        && (1..=31).contains(&day)
        && (0..=23).contains(&h)
        && (0..=59).contains(&min)
        && (0..=60).contains(&sec);
    if !valid {
        return None;
    }
    let days = vltava_client::calendar::days_from_civil(y, m, day);
    Some(((days * 24 + h) * 60 + min) * 60_000 + sec * 1_000 + millis)
}

/// One partition as the console shows it.
struct PartitionRow {
    index: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    /// Log start, high watermark, log end and bytes, if this node holds it.
    local: Option<(i64, i64, i64, u64)>,
}

/// One partition's row, its log read only for the rows a page shows.
fn row(p: &vltava_broker::Partition) -> PartitionRow {
    let a = p.assignment();
    PartitionRow {
        index: p.index,
        leader: a.leader,
        replicas: a.replicas,
        isr: a.isr,
        local: p.is_hosted().then(|| {
            (
                p.log_start_offset(),
                p.high_watermark(),
                p.log_end_offset(),
                p.log().size_bytes(),
            )
        }),
    }
}

fn ids(list: &[i32]) -> String {
    list.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn overview(State(admin): State<Arc<Admin>>) -> Response {
    let Some(broker) = admin.broker() else {
        return starting();
    };
    let listener = broker
        .config
        .listeners
        .first()
        .map(|l| l.name.clone())
        .unwrap_or_default();
    let brokers = broker.registered_on(&listener);
    let topics = broker.replication_summary();
    let sum =
        |f: fn(&vltava_broker::TopicReplication) -> usize| topics.values().map(f).sum::<usize>();
    let partitions = sum(|t| t.partitions);
    let under_replicated = sum(|t| t.under_replicated);
    let offline = sum(|t| t.offline);
    let body = html! {
        h1 { "Cluster " code { (broker.cluster_id()) } }
        div.cards {
            div.card id="brokers-count" { b { (brokers.len()) } "brokers" }
            div.card id="topics-count" { b { (topics.len()) } "topics" }
            div.card id="partitions-count" { b { (partitions) } "partitions" }
            div.card id="under-replicated-count" {
                b.bad[under_replicated > 0] { (under_replicated) } "under-replicated"
            }
            div.card id="offline-count" {
                b.bad[offline > 0] { (offline) } "offline"
            }
        }
        p.muted {
            "Vltava " (env!("CARGO_PKG_VERSION")) ", served by node " (broker.node_id())
            ", controller: node " (broker.controller_id())
        }
        h2 { "Brokers" }
        table id="brokers" {
            tr { th { "Node" } th { "Address" } th { "Rack" } th { "State" } }
            @for (id, host, port, rack, fenced) in &brokers {
                tr {
                    td.num { (id) }
                    td { (host) ":" (port) }
                    td { (rack.as_deref().unwrap_or("—")) }
                    td.bad[*fenced] {
                        @if *fenced { "fenced" } @else { "running" }
                        @if *id == broker.controller_id() { " · controller" }
                    }
                }
            }
        }
    };
    page("Cluster", body).into_response()
}

#[derive(serde::Deserialize)]
pub struct Paging {
    page: Option<usize>,
}

pub async fn topics(State(admin): State<Arc<Admin>>, Query(paging): Query<Paging>) -> Response {
    let Some(broker) = admin.broker() else {
        return starting();
    };
    // Sorted by name.
    let topics: Vec<(String, vltava_broker::TopicReplication)> =
        broker.replication_summary().into_iter().collect();
    let pages = topics.len().div_ceil(TOPICS_PER_PAGE).max(1);
    let current = paging.page.unwrap_or(1).clamp(1, pages);
    let shown = topics
        .iter()
        .skip((current - 1) * TOPICS_PER_PAGE)
        .take(TOPICS_PER_PAGE);
    let body = html! {
        h1 { "Topics" }
        p.muted {
            (topics.len()) " topics"
            @if !admin.read_only() { " · " a href="/new-topic" id="create-topic" { "Create a topic" } }
        }
        table id="topics" {
            tr { th { "Topic" } th { "Partitions" } th { "Replication factor" } th { "Under-replicated" } }
            @for (name, t) in shown {
                tr {
                    // Topic names are [a-zA-Z0-9._-]: nothing to escape in a path.
                    td { a href={ "/topics/" (name) } { (name) } }
                    td.num { (t.partitions) }
                    td.num { (t.factor) }
                    td.num.bad[t.under_replicated > 0] { (t.under_replicated) }
                }
            }
        }
        (pager("/topics", current, pages))
    };
    page("Topics", body).into_response()
}

fn pager(base: &str, current: usize, pages: usize) -> Markup {
    html! {
        @if pages > 1 {
            nav.pages {
                @if current > 1 { a href={ (base) "?page=" (current - 1) } { "← previous" } }
                span { "page " (current) " of " (pages) }
                @if current < pages { a href={ (base) "?page=" (current + 1) } { "next →" } }
            }
        }
    }
}

pub async fn topic(
    State(admin): State<Arc<Admin>>,
    Path(name): Path<String>,
    Query(paging): Query<Paging>,
) -> Response {
    let (broker, topic) = match topic_of(&admin, &name) {
        Ok(found) => found,
        Err(page) => return *page,
    };
    let count = topic.partitions.len();
    let pages = count.div_ceil(PARTITIONS_PER_PAGE).max(1);
    let current = paging.page.unwrap_or(1).clamp(1, pages);
    let overrides: &BTreeMap<String, String> = &topic.overrides;
    let base = format!("/topics/{}", topic.name);
    // Every config with its source, as DescribeConfigs gives them; the
    // overrides alone when the cluster cannot be asked.
    let client = admin.kafka(&broker).await;
    let kafka = client.map(vltava_client::admin::Admin::new);
    let described = match &kafka {
        Ok(kafka) => kafka
            .describe_configs(vltava_client::admin::ResourceType::Topic, &topic.name)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    let rows: Vec<PartitionRow> = topic
        .partitions
        .iter()
        .skip((current - 1) * PARTITIONS_PER_PAGE)
        .take(PARTITIONS_PER_PAGE)
        .map(|p| row(p))
        .collect();
    // The log start and high watermark of partitions held elsewhere, from
    // their leaders.
    let elsewhere: Vec<(String, i32)> = rows
        .iter()
        .filter(|r| r.local.is_none() && r.leader >= 0)
        .map(|r| (topic.name.clone(), r.index))
        .collect();
    let (starts, ends) = match (&kafka, elsewhere.is_empty()) {
        (Ok(kafka), false) => {
            use vltava_client::consumer::OffsetSpec;
            (
                groups::log_ends(kafka, elsewhere.clone(), OffsetSpec::Earliest).await,
                groups::log_ends(kafka, elsewhere, OffsetSpec::Latest).await,
            )
        }
        _ => Default::default(),
    };
    let body = html! {
        h1 { "Topic " code { (topic.name) } }
        p.muted { "id " code { (topic.id) } " · " (count) " partitions" }
        p {
            a href={ (base) "/messages" } id="browse" { "Browse messages" }
            @if !admin.read_only() {
                " · " a href={ (base) "/produce" } id="produce" { "Produce a message" }
            }
        }
        @if !admin.read_only() {
            form.inline method="post" action={ (base) "/partitions" } {
                label { "Partitions: " input type="number" name="count" min=(count + 1) value=(count + 1) required; }
                " " button type="submit" id="add-partitions" { "Add partitions" }
            }
            form.inline method="post" action={ (base) "/delete" } {
                button.danger type="submit" id="delete-topic" { "Delete topic" }
            }
        }
        h2 { "Partitions" }
        table id="partitions" {
            tr {
                th { "Partition" } th { "Leader" } th { "Replicas" } th { "In sync" }
                th { "Log start" } th { "High watermark" } th { "Log end" } th { "Size (bytes)" }
            }
            @for p in &rows {
                tr {
                    td.num { (p.index) }
                    td.num.bad[p.leader < 0] {
                        @if p.leader < 0 { "none" } @else { (p.leader) }
                    }
                    td { (ids(&p.replicas)) }
                    td.bad[p.isr.len() < p.replicas.len()] { (ids(&p.isr)) }
                    @match p.local {
                        Some((start, hw, end, bytes)) => {
                            td.num { (start) } td.num { (hw) } td.num { (end) } td.num { (bytes) }
                        }
                        None => {
                            @let tp = (topic.name.clone(), p.index);
                            @match (starts.get(&tp), ends.get(&tp)) {
                                (Some(start), Some(hw)) => {
                                    td.num { (start) } td.num { (hw) }
                                    td.muted colspan="2" { "held on brokers " (ids(&p.replicas)) }
                                }
                                _ => { td.muted colspan="4" { "held on brokers " (ids(&p.replicas)) } }
                            }
                        }
                    }
                }
            }
        }
        (pager(&base, current, pages))
        h2 { "Configs" }
        @match &described {
            Ok(entries) => {
                table id="configs" {
                    tr { th { "Name" } th { "Value" } th { "Source" } }
                    @for c in entries {
                        tr {
                            td { code { (c.name) } }
                            td {
                                @if c.is_sensitive { span.muted { "(sensitive)" } }
                                @else { code { (c.value.as_deref().unwrap_or("null")) } }
                            }
                            td.muted[c.is_default()] { (vltava_client::admin::ConfigEntry::source_name(c.source)) }
                        }
                    }
                }
            }
            Err(e) => {
                p.error { "The cluster did not describe the configs (" (e) "); the ones set on the topic:" }
                table id="configs" {
                    tr { th { "Name" } th { "Value" } th { "Source" } }
                    @for (k, v) in overrides {
                        tr { td { code { (k) } } td { code { (v) } } td { "DYNAMIC_TOPIC_CONFIG" } }
                    }
                }
            }
        }
    };
    page(&topic.name, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_and_parse_as_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(1_709_210_096_789), "2024-02-29 12:34:56.789 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59.999 UTC");
        for (text, ms) in [
            ("2024-02-29T12:34:56.789", 1_709_210_096_789),
            ("2024-02-29T12:34:56.789Z", 1_709_210_096_789),
            ("2024-02-29 12:34", 1_709_210_040_000),
            ("2024-02-29T12:34:56.7", 1_709_210_096_700),
            ("1709210096789", 1_709_210_096_789),
        ] {
            assert_eq!(parse_utc(text), Some(ms), "{text}");
        }
        for bad in [
            "",
            "2024-13-01T00:00",
            "2024-02-29",
            "2024-02-29T25:00",
            "T12:00",
            "2024-02-29T12:00.1234",
            "2024-02-29T12:00:00:00",
            "99999999999999-01-01T00:00",
            "2024-01-01T-1:00",
            "-1",
            "-2",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn group_ids_are_percent_encoded_in_paths() {
        assert_eq!(segment("my-group_1.x~"), "my-group_1.x~");
        assert_eq!(segment("a b/c?d%é"), "a%20b%2Fc%3Fd%25%C3%A9");
    }

    #[test]
    fn posts_from_another_origin_are_refused() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        assert!(same_origin(&headers(&[])), "tools send no Origin");
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:9644"),
            ("origin", "http://127.0.0.1:9644")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:9644"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:9644"),
            ("origin", "null")
        ])));
        assert!(!same_origin(&headers(&[(
            "origin",
            "http://127.0.0.1:9644"
        )])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
    }
}
