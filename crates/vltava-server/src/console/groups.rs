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

use super::{cluster, not_found, page, pager, problem, segment, Paging};
use crate::admin::Admin;

/// Groups on one page of `/groups`: each costs a describe, an offset
/// fetch and a ListOffsets.
pub const GROUPS_PER_PAGE: usize = 50;

/// How long `/groups` asks about its page's groups before it lists the
/// rest without their state and lag.
const GROUPS_PAGE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// One partition of a group: committed to, or assigned to a member.
pub(crate) struct OffsetRow {
    pub tp: TopicPartition,
    /// `None` for an assigned partition with no commit yet.
    pub committed: Option<i64>,
    /// The log end; `None` when the partition's leader did not answer (a
    /// deleted topic, an offline partition).
    pub end: Option<i64>,
}

impl OffsetRow {
    /// The log end minus the committed offset, as Kafka's tool computes it
    /// (negative when the log was truncated below a commit); `None` without
    /// both.
    pub fn lag(&self) -> Option<i64> {
        Some(self.end? - self.committed?)
    }
}

/// The log ends of `tps`, topic by topic, so one deleted or offline topic
/// leaves only its own partitions without an end.
pub(crate) async fn log_ends(
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

/// A group's committed offsets with their log ends, and the partitions
/// its members are assigned without a commit (as Kafka's tool lists them).
pub(crate) async fn offsets(
    admin: &KafkaAdmin,
    group: &str,
    assigned: &[TopicPartition],
) -> Result<Vec<OffsetRow>, vltava_client::Error> {
    let committed = admin.group_offsets(group).await?;
    let mut rows: BTreeMap<TopicPartition, Option<i64>> =
        assigned.iter().map(|tp| (tp.clone(), None)).collect();
    rows.extend(committed.into_iter().map(|(tp, o)| (tp, Some(o))));
    let ends = log_ends(admin, rows.keys().cloned(), OffsetSpec::Latest).await;
    Ok(rows
        .into_iter()
        .map(|(tp, committed)| OffsetRow {
            end: ends.get(&tp).copied(),
            tp,
            committed,
        })
        .collect())
}

/// Every partition assigned to a member of `d`.
pub(crate) fn assigned(d: &GroupDescription) -> Vec<TopicPartition> {
    d.members
        .iter()
        .flat_map(|m| m.assignment.iter().cloned())
        .collect()
}

/// The summed lag of the rows that have one.
fn total_lag(rows: &[OffsetRow]) -> i64 {
    rows.iter().filter_map(OffsetRow::lag).sum()
}

pub async fn groups(State(admin): State<Arc<Admin>>, Query(paging): Query<Paging>) -> Response {
    let (_, kafka) = match cluster(&admin).await {
        Ok(found) => found,
        Err(page) => return page,
    };
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
    // Each group costs requests to its coordinator and to leaders: past
    // the deadline the rest of the page is listed without them.
    let deadline = tokio::time::Instant::now() + GROUPS_PAGE_DEADLINE;
    let mut rows = Vec::new();
    for g in listed
        .iter()
        .skip((current - 1) * GROUPS_PER_PAGE)
        .take(GROUPS_PER_PAGE)
    {
        if tokio::time::Instant::now() >= deadline {
            rows.push((
                g,
                Err("not asked: the page's time ran out".to_string()),
                None,
            ));
            continue;
        }
        let described = kafka
            .describe_any_group(&g.group_id)
            .await
            .map_err(|e| e.to_string());
        let assigned = described.as_ref().map(assigned).unwrap_or_default();
        let lag = match offsets(&kafka, &g.group_id, &assigned).await {
            Ok(rows) => Some(Ok(total_lag(&rows))),
            Err(e) => Some(Err(e.to_string())),
        };
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
                    @match d {
                        Ok(d) => {
                            td { (d.state) }
                            td.num { (d.members.len()) }
                            td { (d.protocol) }
                        }
                        Err(e) => { td.bad colspan="3" { "not described: " (e) } }
                    }
                    @match lag {
                        Some(Ok(lag)) => { td.num { (lag) } }
                        Some(Err(e)) => { td.bad { "not known: " (e) } }
                        None => { td.muted { "—" } }
                    }
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
    let (_, kafka) = match cluster(&admin).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    if id.len() > vltava_broker::group::GROUP_ID_BYTES_MAX {
        let why = format!(
            "Group ids are at most {} bytes.",
            vltava_broker::group::GROUP_ID_BYTES_MAX
        );
        return not_found("No such group", &why);
    }
    let (d, rows) = match kafka.describe_any_group(&id).await {
        Ok(d) => match offsets(&kafka, &id, &assigned(&d)).await {
            Ok(rows) => (d, rows),
            Err(e) => {
                let why = format!("The group's offsets could not be read: {e}");
                return problem(StatusCode::BAD_GATEWAY, "Cannot describe the group", &why);
            }
        },
        Err(e) => {
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
                        td.num { @if let Some(c) = r.committed { (c) } @else { span.muted { "—" } } }
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
