//! Consumer groups: `/groups` (every group with its state, members and
//! total lag, paginated) and `/groups/{id}` (members and their
//! assignments, each partition's committed offset, log end and lag, and
//! the reset and delete forms). Groups are described by their
//! coordinators and log ends asked of the partitions' leaders, through
//! the console's Kafka client.
//!
//! Lag is the log end (ListOffsets' latest, the high watermark) minus the
//! committed offset, as `kafka-consumer-groups.sh --describe` computes it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use vltava_client::admin::{Admin as KafkaAdmin, GroupDescription};
use vltava_client::consumer::{OffsetSpec, TopicPartition};

use super::{kafka, not_found, page, pager, problem, segment, starting, Paging};
use crate::admin::Admin;

/// Groups on one page of `/groups`: each costs a describe, an offset
/// fetch and a ListOffsets.
pub const GROUPS_PER_PAGE: usize = 50;

/// One committed partition of a group.
pub(super) struct OffsetRow {
    pub tp: TopicPartition,
    pub committed: i64,
    /// The log end; `None` when the partition's leader did not answer (a
    /// deleted topic, an offline partition).
    pub end: Option<i64>,
}

impl OffsetRow {
    pub fn lag(&self) -> Option<i64> {
        self.end.map(|end| (end - self.committed).max(0))
    }
}

/// The log ends of `tps`, topic by topic, so one deleted or offline topic
/// leaves only its own partitions without an end.
pub(super) async fn log_ends(
    admin: &KafkaAdmin,
    tps: impl IntoIterator<Item = TopicPartition>,
    spec: OffsetSpec,
) -> BTreeMap<TopicPartition, i64> {
    let mut by_topic: BTreeMap<String, Vec<(TopicPartition, OffsetSpec)>> = BTreeMap::new();
    for tp in tps {
        by_topic.entry(tp.0.clone()).or_default().push((tp, spec));
    }
    let mut out = BTreeMap::new();
    for wanted in by_topic.values() {
        if let Ok(got) = admin.list_offsets(wanted).await {
            out.extend(got);
        }
    }
    out
}

/// A group's committed offsets with their log ends.
pub(super) async fn offsets(
    admin: &KafkaAdmin,
    group: &str,
) -> Result<Vec<OffsetRow>, vltava_client::Error> {
    let committed = admin.group_offsets(group).await?;
    let ends = log_ends(admin, committed.keys().cloned(), OffsetSpec::Latest).await;
    Ok(committed
        .into_iter()
        .map(|(tp, committed)| OffsetRow {
            end: ends.get(&tp).copied(),
            tp,
            committed,
        })
        .collect())
}

/// The summed lag of the rows that have one.
fn total_lag(rows: &[OffsetRow]) -> i64 {
    rows.iter().filter_map(OffsetRow::lag).sum()
}

pub async fn groups(State(admin): State<Arc<Admin>>, Query(paging): Query<Paging>) -> Response {
    let Some(broker) = admin.broker() else {
        return starting();
    };
    let client = match kafka(&admin, &broker).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let kafka = KafkaAdmin::new(client);
    let mut listed = match kafka.list_groups().await {
        Ok(l) => l,
        Err(e) => {
            return problem(
                StatusCode::BAD_GATEWAY,
                "Cannot list groups",
                &e.to_string(),
            )
        }
    };
    listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    let pages = listed.len().div_ceil(GROUPS_PER_PAGE).max(1);
    let current = paging.page.unwrap_or(1).clamp(1, pages);
    let mut rows = Vec::new();
    for g in listed
        .iter()
        .skip((current - 1) * GROUPS_PER_PAGE)
        .take(GROUPS_PER_PAGE)
    {
        let described = kafka.describe_any_group(&g.group_id).await.ok();
        let lag = offsets(&kafka, &g.group_id)
            .await
            .ok()
            .map(|r| total_lag(&r));
        rows.push((g, described, lag));
    }
    let body = html! {
        h1 { "Consumer groups" }
        p.muted { (listed.len()) " groups" }
        table id="groups" {
            tr { th { "Group" } th { "Type" } th { "State" } th { "Members" } th { "Assignor" } th { "Total lag" } }
            @for (g, d, lag) in &rows {
                tr {
                    td { a href={ "/groups/" (segment(&g.group_id)) } { (g.group_id) } }
                    td { (g.group_type) }
                    td { (d.as_ref().map_or(g.state.as_str(), |d| d.state.as_str())) }
                    td.num { (d.as_ref().map_or(0, |d| d.members.len())) }
                    td { (d.as_ref().map_or("", |d| d.protocol.as_str())) }
                    td.num { @if let Some(lag) = lag { (lag) } @else { span.muted { "—" } } }
                }
            }
        }
        (pager("/groups", current, pages))
    };
    page("Consumer groups", body).into_response()
}

/// The member owning each partition, by client id and member id.
fn owners(d: &GroupDescription) -> BTreeMap<TopicPartition, String> {
    let mut out = BTreeMap::new();
    for m in &d.members {
        for tp in &m.assignment {
            out.insert(tp.clone(), m.client_id.clone());
        }
    }
    out
}

pub async fn group(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Response {
    let Some(broker) = admin.broker() else {
        return starting();
    };
    let client = match kafka(&admin, &broker).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let kafka = KafkaAdmin::new(client);
    let (d, rows) = match (
        kafka.describe_any_group(&id).await,
        offsets(&kafka, &id).await,
    ) {
        (Ok(d), Ok(rows)) => (d, rows),
        (Err(e), _) | (_, Err(e)) => {
            let why = format!("The group could not be described: {e}");
            return problem(StatusCode::BAD_GATEWAY, "Cannot describe the group", &why);
        }
    };
    if d.state == "Dead" && rows.is_empty() {
        return not_found("No such group", &format!("There is no group {id}."));
    }
    let owned = owners(&d);
    let base = format!("/groups/{}", segment(&id));
    let resettable = matches!(d.state.as_str(), "Empty" | "Dead");
    let topics: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.tp.0.as_str()).collect();
    let body = html! {
        h1 { "Consumer group " code { (id) } }
        div.cards {
            div.card id="state" { b { (d.state) } "state" }
            div.card id="members-count" { b { (d.members.len()) } "members" }
            div.card id="total-lag" { b { (total_lag(&rows)) } "total lag" }
        }
        p.muted {
            (d.group_type) " group · protocol type " code { (if d.protocol_type.is_empty() { "—" } else { &d.protocol_type }) }
            " · assignor " code { (if d.protocol.is_empty() { "—" } else { &d.protocol }) }
            " · coordinator: node " (d.coordinator)
            @if let Some(e) = d.group_epoch { " · group epoch " (e) }
        }
        h2 { "Members" }
        @if d.members.is_empty() {
            p.muted { "No members." }
        } @else {
            table id="members" {
                tr { th { "Member" } th { "Client id" } th { "Host" } th { "Assigned partitions" } }
                @for m in &d.members {
                    tr {
                        td { code { (m.member_id) } }
                        td { (m.client_id) }
                        td { (m.host) }
                        td { (m.assignment.iter().map(|(t, p)| format!("{t}-{p}")).collect::<Vec<_>>().join(", ")) }
                    }
                }
            }
        }
        h2 { "Offsets" }
        @if rows.is_empty() {
            p.muted { "No committed offsets." }
        } @else {
            table id="offsets" {
                tr { th { "Topic" } th { "Partition" } th { "Committed" } th { "Log end" } th { "Lag" } th { "Member" } }
                @for r in &rows {
                    tr {
                        td { a href={ "/topics/" (r.tp.0) } { (r.tp.0) } }
                        td.num { (r.tp.1) }
                        td.num { (r.committed) }
                        td.num { @if let Some(e) = r.end { (e) } @else { span.muted { "—" } } }
                        td.num { @if let Some(l) = r.lag() { (l) } @else { span.muted { "—" } } }
                        td { (owned.get(&r.tp).map_or("", String::as_str)) }
                    }
                }
            }
        }
        @if !admin.read_only() {
            h2 { "Reset offsets" }
            @if resettable {
                form.panel method="post" action={ (base) "/reset" } {
                    label { "Topic"
                        select name="topic" {
                            option value="" { "every committed topic" }
                            @for t in &topics { option value=(t) { (t) } }
                        }
                    }
                    label { "To"
                        select name="to" {
                            option value="earliest" { "the earliest offset" }
                            option value="latest" { "the latest offset" }
                            option value="offset" { "an offset" }
                            option value="timestamp" { "a time (UTC)" }
                            option value="shift" { "shifted by" }
                        }
                    }
                    label { "Offset, time or shift" input type="text" name="value"; }
                    button type="submit" id="reset" { "Dry run" }
                }
            } @else {
                p.muted { "Offsets can be reset only while the group has no members (it is " (d.state) ")." }
            }
            h2 { "Delete" }
            form.inline method="post" action={ (base) "/delete" } {
                button.danger type="submit" id="delete-group" { "Delete group" }
            }
        }
    };
    page(&format!("Group {id}"), body).into_response()
}
