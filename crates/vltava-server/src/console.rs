//! The web console on the admin listener: server-rendered HTML (maud),
//! styles embedded in the binary, no scripts and nothing fetched from
//! elsewhere, so it works offline. Read-only so far: the cluster overview
//! (`/`), the topics (`/topics`, paginated) and one topic's partitions and
//! configs (`/topics/{name}`). Handlers read the broker's own state, as
//! the Kafka handlers do; they keep none of their own.
//!
//! Log offsets and sizes are this node's: a partition with no replica here
//! says which brokers hold it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use vltava_broker::Assignment;

use crate::admin::Admin;

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
";

/// The answer while the broker is still opening.
fn starting() -> Response {
    let page = page(
        "Starting",
        html! { p { "The broker is still starting: recovering logs and catching up with the metadata quorum." } },
    );
    (StatusCode::SERVICE_UNAVAILABLE, page).into_response()
}

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
                }
                main { (body) }
            }
        }
    };
    Html(markup.into_string())
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

fn assignments(topic: &vltava_broker::Topic) -> impl Iterator<Item = Assignment> + '_ {
    topic.partitions.iter().map(|p| p.assignment())
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
    let topics = broker.topics();
    let all: Vec<Assignment> = topics.iter().flat_map(|t| assignments(t)).collect();
    let partitions = all.len();
    let under_replicated = all
        .iter()
        .filter(|a| a.leader >= 0 && a.isr.len() < a.replicas.len())
        .count();
    let offline = all.iter().filter(|a| a.leader < 0).count();
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
    let mut topics = broker.topics();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let pages = topics.len().div_ceil(TOPICS_PER_PAGE).max(1);
    let current = paging.page.unwrap_or(1).clamp(1, pages);
    let shown = topics
        .iter()
        .skip((current - 1) * TOPICS_PER_PAGE)
        .take(TOPICS_PER_PAGE);
    let body = html! {
        h1 { "Topics" }
        p.muted { (topics.len()) " topics" }
        table id="topics" {
            tr { th { "Topic" } th { "Partitions" } th { "Replication factor" } th { "Under-replicated" } }
            @for topic in shown {
                @let parts: Vec<Assignment> = assignments(topic).collect();
                @let factor = parts.first().map_or(0, |a| a.replicas.len());
                @let under = parts.iter().filter(|a| a.isr.len() < a.replicas.len()).count();
                tr {
                    // Topic names are [a-zA-Z0-9._-]: nothing to escape in a path.
                    td { a href={ "/topics/" (topic.name) } { (topic.name) } }
                    td.num { (parts.len()) }
                    td.num { (factor) }
                    td.num.bad[under > 0] { (under) }
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
    let Some(broker) = admin.broker() else {
        return starting();
    };
    let Some(topic) = broker.topic(&name) else {
        let body = html! { h1 { "No such topic" } p { "There is no topic " code { (name) } "." } };
        return (StatusCode::NOT_FOUND, page("No such topic", body)).into_response();
    };
    let count = topic.partitions.len();
    let pages = count.div_ceil(PARTITIONS_PER_PAGE).max(1);
    let current = paging.page.unwrap_or(1).clamp(1, pages);
    let overrides: &BTreeMap<String, String> = &topic.overrides;
    let base = format!("/topics/{}", topic.name);
    let body = html! {
        h1 { "Topic " code { (topic.name) } }
        p.muted { "id " code { (topic.id) } " · " (count) " partitions" }
        h2 { "Partitions" }
        table id="partitions" {
            tr {
                th { "Partition" } th { "Leader" } th { "Replicas" } th { "In sync" }
                th { "Log start" } th { "High watermark" } th { "Log end" } th { "Size (bytes)" }
            }
            @for p in topic.partitions.iter().skip((current - 1) * PARTITIONS_PER_PAGE).take(PARTITIONS_PER_PAGE).map(|p| row(p)) {
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
                            td.muted colspan="4" { "held on brokers " (ids(&p.replicas)) }
                        }
                    }
                }
            }
        }
        (pager(&base, current, pages))
        h2 { "Configs set on the topic" }
        @if overrides.is_empty() {
            p.muted { "None: every config has its broker default." }
        } @else {
            table id="configs" {
                tr { th { "Name" } th { "Value" } }
                @for (k, v) in overrides {
                    tr { td { code { (k) } } td { code { (v) } } }
                }
            }
        }
    };
    page(&topic.name, body).into_response()
}
