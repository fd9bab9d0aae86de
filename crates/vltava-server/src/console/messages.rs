//! The message browser: `/topics/{name}/messages`. One partition at a
//! time, from its beginning, its end (the newest records), an offset or a
//! timestamp; keys, values and headers shown as text, pretty JSON or hex;
//! and a search through a bounded number of records. Records are fetched
//! from the partition's leader through the console's Kafka client, up to
//! the high watermark, as a read-uncommitted consumer sees them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use maud::{html, Markup};
use vltava_client::admin::Admin as KafkaAdmin;
use vltava_client::consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetSpec};

use super::{kafka, page, parse_utc, partition_field, problem, topic_of, utc};
use crate::admin::Admin;

/// Records shown on one page unless the form asks for another number.
pub const MESSAGES_PER_PAGE: usize = 50;

/// The most records one page shows.
pub const MESSAGES_PER_PAGE_MAX: usize = 500;

/// The most records one search reads before it stops and offers the next
/// range: a search is a scan, and a page must come back in seconds.
pub const SEARCH_RECORDS_MAX: usize = 10_000;

/// The longest search text taken.
pub const SEARCH_TEXT_MAX: usize = 1_000;

/// The most bytes of one key, value or header shown; the rest is counted.
pub const SHOWN_BYTES_MAX: usize = 16 * 1024;

/// The most headers of one record shown; the rest are counted.
pub const HEADERS_SHOWN_MAX: usize = 100;

/// The longest header name shown, in characters.
pub const HEADER_NAME_SHOWN_MAX: usize = 1_024;

/// The most bytes of keys, values and headers one page keeps: reading
/// stops there (500 records of 16 KiB values would be 8 MiB, hex tripled).
pub const PAGE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// How long one page reads before it shows what it has.
const READ_DEADLINE: Duration = Duration::from_secs(5);

/// The query of a browse; every field as typed in the form (an empty field
/// is absent), parsed here so a bad one gets a message rather than a 400.
#[derive(serde::Deserialize, Default)]
pub struct Browse {
    partition: Option<String>,
    from: Option<String>,
    offset: Option<String>,
    timestamp: Option<String>,
    limit: Option<String>,
    format: Option<String>,
    search: Option<String>,
}

/// How keys, values and headers are shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
    Hex,
    /// Confluent's wire format decoded through the node's schema registry.
    Schema,
}

impl Format {
    fn parse(name: &str) -> Option<Format> {
        match name {
            "" | "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            "hex" => Some(Format::Hex),
            "schema" => Some(Format::Schema),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Hex => "hex",
            Format::Schema => "schema",
        }
    }
}

/// Where a browse starts.
#[derive(Clone, PartialEq, Eq)]
enum From {
    Beginning,
    End,
    Offset(i64),
    Timestamp(i64),
}

/// A browse's parsed query.
struct Request {
    partition: i32,
    from: From,
    limit: usize,
    format: Format,
    search: Option<String>,
}

fn field(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn parse(q: &Browse, partitions: usize) -> Result<Request, String> {
    let partition = match field(&q.partition) {
        None => 0,
        Some(p) => partition_field(p, partitions)?,
    };
    let from = match field(&q.from).unwrap_or("end") {
        "beginning" => From::Beginning,
        "end" => From::End,
        "offset" => {
            let text = field(&q.offset).ok_or("from an offset: give the offset")?;
            From::Offset(
                text.parse::<i64>()
                    .map_err(|_| format!("offset {text}: not a whole number"))?,
            )
        }
        "timestamp" => {
            let text = field(&q.timestamp).ok_or("from a time: give the time")?;
            From::Timestamp(parse_utc(text).ok_or(format!(
                "time {text}: write YYYY-MM-DDTHH:MM[:SS[.mmm]] (UTC) or epoch milliseconds"
            ))?)
        }
        other => return Err(format!("from {other}: beginning, end, offset or timestamp")),
    };
    let limit = match field(&q.limit) {
        None => MESSAGES_PER_PAGE,
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MESSAGES_PER_PAGE_MAX).contains(n))
            .ok_or(format!(
                "{n} records: show 1 to {MESSAGES_PER_PAGE_MAX} at a time"
            ))?,
    };
    let format = field(&q.format).unwrap_or("text");
    let format =
        Format::parse(format).ok_or(format!("format {format}: text, json, hex or schema"))?;
    let search = match field(&q.search) {
        Some(s) if s.chars().count() > SEARCH_TEXT_MAX => {
            return Err(format!(
                "the search text is longer than {SEARCH_TEXT_MAX} characters"
            ))
        }
        s => s.map(str::to_string),
    };
    Ok(Request {
        partition,
        from,
        limit,
        format,
        search,
    })
}

/// What one browse read.
struct Read {
    log_start: i64,
    high_watermark: i64,
    /// The first offset read.
    first: i64,
    /// The offset after the last one read: where the next page starts.
    next: i64,
    scanned: usize,
    shown: Vec<Kept>,
    /// Why reading stopped before the high watermark, if it did.
    stopped: Option<String>,
}

/// A key, value or header value as a page keeps it: its first
/// [`SHOWN_BYTES_MAX`] bytes, copied out of the fetched batch so a page
/// holds no more than it shows, and its full length.
struct Part {
    head: Bytes,
    len: usize,
}

impl Part {
    fn of(bytes: &Bytes) -> Part {
        Part {
            head: Bytes::copy_from_slice(&bytes[..bytes.len().min(SHOWN_BYTES_MAX)]),
            len: bytes.len(),
        }
    }
}

/// One record as a page keeps it.
struct Kept {
    offset: i64,
    timestamp_ms: i64,
    timestamp_type: &'static str,
    key: Option<Part>,
    value: Option<Part>,
    headers: Vec<(String, Option<Part>)>,
    /// Headers past [`HEADERS_SHOWN_MAX`].
    more_headers: usize,
}

impl Kept {
    /// The bytes of keys, values and headers kept.
    fn bytes(&self) -> usize {
        let part = |p: &Option<Part>| p.as_ref().map_or(0, |p| p.head.len());
        part(&self.key)
            + part(&self.value)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + part(v))
                .sum::<usize>()
    }

    fn of(r: &ConsumerRecord) -> Kept {
        Kept {
            offset: r.offset,
            timestamp_ms: r.timestamp_ms,
            timestamp_type: r.timestamp_type,
            key: r.key.as_ref().map(Part::of),
            value: r.value.as_ref().map(Part::of),
            headers: r
                .headers
                .iter()
                .take(HEADERS_SHOWN_MAX)
                .map(|(k, v)| {
                    let name = k.chars().take(HEADER_NAME_SHOWN_MAX).collect();
                    (name, v.as_ref().map(Part::of))
                })
                .collect(),
            more_headers: r.headers.len().saturating_sub(HEADERS_SHOWN_MAX),
        }
    }
}

pub async fn messages(
    State(admin): State<Arc<Admin>>,
    Path(name): Path<String>,
    Query(q): Query<Browse>,
) -> Response {
    let (broker, topic) = match topic_of(&admin, &name) {
        Ok(found) => found,
        Err(page) => return *page,
    };
    let partitions = topic.partitions.len();
    let request = match parse(&q, partitions) {
        Ok(r) => r,
        Err(why) => return problem(StatusCode::BAD_REQUEST, "Cannot browse", &why),
    };
    let client = match kafka(&admin, &broker).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let read = match read(client, &name, &request).await {
        Ok(r) => r,
        Err(e) => {
            let why = format!("Reading partition {} failed: {e}", request.partition);
            return problem(StatusCode::BAD_GATEWAY, "Cannot browse", &why);
        }
    };
    let decoded = match request.format {
        Format::Schema => decoded(&admin, &read.shown).await,
        _ => Vec::new(),
    };
    let body = html! {
        h1 { "Messages of " a href={ "/topics/" (name) } { code { (name) } } }
        (form(&name, partitions, &request, &q))
        (summary(&name, &request, &read))
        table id="messages" {
            tr { th { "Offset" } th { "Timestamp" } th { "Key" } th { "Value" } th { "Headers" } }
            @for (i, r) in read.shown.iter().enumerate() {
                tr {
                    td.num { (r.offset) }
                    td { (utc(r.timestamp_ms)) br; span.muted { (r.timestamp_type) } }
                    @if let Some((key, value)) = decoded.get(i) {
                        td { (schema_shown(r.key.as_ref(), key)) }
                        td { (schema_shown(r.value.as_ref(), value)) }
                    } @else {
                        td { (shown_quietly(r.key.as_ref(), request.format)) }
                        td { (shown(r.value.as_ref(), request.format)) }
                    }
                    td {
                        @for (k, v) in &r.headers {
                            div.header { code { (k) } ": " (shown_quietly(v.as_ref(), request.format)) }
                        }
                        @if r.more_headers > 0 { span.muted { "… " (r.more_headers) " more headers" } }
                    }
                }
            }
        }
    };
    page(&format!("Messages of {name}"), body).into_response()
}

/// Reads the page `request` asks for.
async fn read(
    client: vltava_client::Client,
    topic: &str,
    request: &Request,
) -> Result<Read, vltava_client::Error> {
    let tp = (topic.to_string(), request.partition);
    let admin = KafkaAdmin::new(client.clone());
    // One answer per partition per call: the log start and the end apart.
    let offset_of = |spec: OffsetSpec| {
        let admin = admin.clone();
        let tp = tp.clone();
        async move {
            let got = admin.list_offsets(&[(tp.clone(), spec)]).await?;
            Ok::<_, vltava_client::Error>(got.get(&tp).copied())
        }
    };
    let log_start = offset_of(OffsetSpec::Earliest).await?.unwrap_or(0);
    // The two answers are apart in time (a retention pass may move the
    // log start between them): never an end below the start.
    let high_watermark = offset_of(OffsetSpec::Latest)
        .await?
        .unwrap_or(log_start)
        .max(log_start);
    let first = match request.from {
        From::Beginning => log_start,
        // The newest `limit` offsets; a search scans the newest
        // SEARCH_RECORDS_MAX.
        From::End => {
            let back = match request.search {
                Some(_) => SEARCH_RECORDS_MAX,
                None => request.limit,
            };
            (high_watermark - back as i64).max(log_start)
        }
        From::Offset(o) => o.clamp(log_start, high_watermark),
        // No record at or after the time: nothing to show, as Kafka's
        // ListOffsets answers -1.
        From::Timestamp(ts) => match offset_of(OffsetSpec::Timestamp(ts)).await? {
            Some(o) if o >= 0 => o.clamp(log_start, high_watermark),
            _ => high_watermark,
        },
    };
    let config = ConsumerConfig {
        auto_offset_reset: OffsetSpec::Earliest,
        fetch_max_wait: Duration::from_millis(100),
        fetch_max_bytes: 8 * 1024 * 1024,
        partition_max_bytes: 1024 * 1024,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client, config);
    consumer.assign(vec![tp.clone()]);
    consumer.seek(&tp, first);
    let scan_max = match request.search {
        Some(_) => SEARCH_RECORDS_MAX,
        None => request.limit,
    };
    let needle = request.search.as_deref().map(str::to_lowercase);
    let mut out = Read {
        log_start,
        high_watermark,
        first,
        next: first,
        scanned: 0,
        shown: Vec::new(),
        stopped: None,
    };
    let deadline = Instant::now() + READ_DEADLINE;
    let mut kept_bytes = 0usize;
    'reading: while out.next < high_watermark {
        if out.shown.len() >= request.limit {
            break;
        }
        if out.scanned >= scan_max {
            out.stopped = Some(format!("the search stops after {scan_max} records"));
            break;
        }
        if Instant::now() >= deadline {
            out.stopped = Some(format!(
                "reading stops after {} seconds",
                READ_DEADLINE.as_secs()
            ));
            break;
        }
        if kept_bytes >= PAGE_BYTES_MAX {
            out.stopped = Some(format!(
                "a page holds at most {} MiB of keys, values and headers",
                PAGE_BYTES_MAX / (1024 * 1024)
            ));
            break;
        }
        for r in consumer.poll().await? {
            // A batch can start before the offset asked for, and a
            // compacted log has gaps: the next page starts after the last
            // record read.
            if r.offset < out.next {
                continue;
            }
            if r.offset >= high_watermark {
                out.next = high_watermark;
                break 'reading;
            }
            out.next = r.offset + 1;
            out.scanned += 1;
            if needle.as_deref().is_none_or(|n| matches(&r, n)) {
                let kept = Kept::of(&r);
                kept_bytes += kept.bytes();
                out.shown.push(kept);
            }
            if out.shown.len() >= request.limit
                || out.scanned >= scan_max
                || kept_bytes >= PAGE_BYTES_MAX
            {
                continue 'reading;
            }
        }
        // Every record fetched was read: the consumer's position is past
        // what the fetch covered, including offsets compaction removed and
        // control batches, which no record marks. Without this a log whose
        // last offsets below the high watermark hold no record would be
        // polled until the deadline.
        if let Some(position) = consumer.position(&tp) {
            out.next = out.next.max(position.min(high_watermark));
        }
    }
    Ok(out)
}

/// True when the key, the value, a header's name or a header's value holds
/// `needle` (lowercase), ignoring case; bytes are read as UTF-8 with
/// invalid sequences replaced.
fn matches(r: &ConsumerRecord, needle: &str) -> bool {
    let has = |b: Option<&Bytes>| {
        b.is_some_and(|b| String::from_utf8_lossy(b).to_lowercase().contains(needle))
    };
    has(r.key.as_ref())
        || has(r.value.as_ref())
        || r.headers
            .iter()
            .any(|(k, v)| k.to_lowercase().contains(needle) || has(v.as_ref()))
}

/// A key's or value's decoding: the schema id and its JSON, or why not.
type Decoded = Option<Result<(i32, String), String>>;

/// Each shown record's key and value decoded through the node's schema
/// registry (each schema read once per page). Parts cut at
/// `SHOWN_BYTES_MAX` are not decoded.
async fn decoded(admin: &Admin, shown: &[Kept]) -> Vec<(Decoded, Decoded)> {
    let mut schemas: std::collections::HashMap<
        i32,
        Result<vltava_registry::schema::Parsed, String>,
    > = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(shown.len());
    for r in shown {
        let mut pair = [None, None];
        for (slot, part) in pair.iter_mut().zip([r.key.as_ref(), r.value.as_ref()]) {
            let Some(part) = part else { continue };
            if part.len > part.head.len() {
                *slot = Some(Err(format!(
                    "not decoded: {} bytes is over the {SHOWN_BYTES_MAX} shown",
                    part.len
                )));
                continue;
            }
            let Some((id, body)) = vltava_registry::wire::schema_id(&part.head) else {
                *slot = Some(Err(
                    "no schema id (not in Confluent's wire format)".to_string()
                ));
                continue;
            };
            let schema = match schemas.entry(id) {
                std::collections::hash_map::Entry::Occupied(found) => found.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(match admin.registry() {
                        Some(registry) => registry
                            .parsed_by_id(id)
                            .await
                            .map_err(|e| e.parts().2.to_string()),
                        None => Err("this node has no schema registry".to_string()),
                    })
                }
            };
            *slot = Some(match schema {
                Ok(schema) => vltava_registry::wire::to_json(schema, body).map(|text| (id, text)),
                Err(why) => Err(format!("schema {id}: {why}")),
            });
        }
        let [key, value] = pair;
        out.push((key, value));
    }
    out
}

/// A decoded key or value: pretty JSON with its schema id, or the bytes as
/// text and why they were not decoded.
fn schema_shown(part: Option<&Part>, decoded: &Decoded) -> Markup {
    match (part, decoded) {
        (Some(_), Some(Ok((id, text)))) => {
            let pretty = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| text.clone());
            html! { pre { (pretty) } span.muted { "schema " (id) } }
        }
        (Some(part), Some(Err(why))) => html! {
            pre { (String::from_utf8_lossy(&part.head)) }
            span.muted { "(" (why) ")" }
        },
        (part, _) => shown(part, Format::Text),
    }
}

/// A value as `format` shows it.
fn shown(part: Option<&Part>, format: Format) -> Markup {
    shown_marked(part, format, true)
}

/// A key or header value: as a value, but in JSON form one that is not
/// JSON is shown as text without saying so (keys and headers seldom are).
fn shown_quietly(part: Option<&Part>, format: Format) -> Markup {
    shown_marked(part, format, false)
}

fn shown_marked(part: Option<&Part>, format: Format, mark: bool) -> Markup {
    let Some(part) = part else {
        return html! { span.muted { "null" } };
    };
    let more = part.len - part.head.len();
    let text = match format {
        // Decoded by the page before it is drawn; here only as text.
        Format::Text | Format::Schema => String::from_utf8_lossy(&part.head).into_owned(),
        Format::Hex => hex(&part.head),
        // Pretty only when the whole value is kept and is JSON; else as
        // text, said so.
        Format::Json => match serde_json::from_slice::<serde_json::Value>(&part.head) {
            Ok(v) if more == 0 => serde_json::to_string_pretty(&v).unwrap_or_default(),
            _ => {
                return html! {
                    pre { (String::from_utf8_lossy(&part.head)) }
                    @if mark { span.muted { "(not JSON)" } }
                    (more_bytes(more))
                }
            }
        },
    };
    html! { pre { (text) } (more_bytes(more)) }
}

fn more_bytes(more: usize) -> Markup {
    html! { @if more > 0 { span.muted { "… " (more) " more bytes" } } }
}

/// Bytes as lowercase hex pairs, 16 to a line.
fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|line| {
            line.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The browse form, filled in with what was asked.
fn form(topic: &str, partitions: usize, request: &Request, q: &Browse) -> Markup {
    let from = match request.from {
        From::Beginning => "beginning",
        From::End => "end",
        From::Offset(_) => "offset",
        From::Timestamp(_) => "timestamp",
    };
    html! {
        form.panel method="get" action={ "/topics/" (topic) "/messages" } {
            label { "Partition"
                input type="number" name="partition" min="0" max=(partitions.saturating_sub(1)) value=(request.partition);
            }
            label { "From"
                select name="from" {
                    @for (v, label) in [("end", "the newest"), ("beginning", "the beginning"), ("offset", "an offset"), ("timestamp", "a time (UTC)")] {
                        option value=(v) selected[v == from] { (label) }
                    }
                }
            }
            label { "Offset" input type="number" name="offset" value=(field(&q.offset).unwrap_or("")); }
            label { "Time (UTC)" input type="text" name="timestamp" placeholder="2026-01-31T12:00:00" value=(field(&q.timestamp).unwrap_or("")); }
            label { "Records" input type="number" name="limit" min="1" max=(MESSAGES_PER_PAGE_MAX) value=(request.limit); }
            label { "Show as"
                select name="format" {
                    @for f in [Format::Text, Format::Json, Format::Hex, Format::Schema] {
                        option value=(f.name()) selected[f == request.format] { (f.name()) }
                    }
                }
            }
            label { "Search" input type="text" name="search" value=(request.search.as_deref().unwrap_or("")); }
            button type="submit" id="show" { "Show" }
        }
    }
}

/// What was read, and the links to the pages around it.
fn summary(topic: &str, request: &Request, read: &Read) -> Markup {
    let link = |offset: i64| {
        let mut url = format!(
            "/topics/{topic}/messages?partition={}&from=offset&offset={offset}&limit={}&format={}",
            request.partition,
            request.limit,
            request.format.name()
        );
        if let Some(s) = &request.search {
            url.push_str("&search=");
            url.push_str(&super::segment(s));
        }
        url
    };
    let previous = (read.first > read.log_start && request.search.is_none())
        .then(|| (read.first - request.limit as i64).max(read.log_start));
    html! {
        p id="range" {
            "Partition " (request.partition) ": log start " (read.log_start)
            ", high watermark " (read.high_watermark) ". "
            @if let Some(s) = &request.search {
                "Searched offsets " (read.first) " to " (read.next - 1) " (" (read.scanned) " records) for "
                code { (s) } ": " (read.shown.len()) " found."
            } @else if read.shown.is_empty() {
                "No records from offset " (read.first) "."
            } @else {
                "Records " (read.shown.first().map_or(0, |r| r.offset)) " to " (read.shown.last().map_or(0, |r| r.offset)) "."
            }
            @if let Some(why) = &read.stopped { " " span.muted { "(" (why) ")" } }
        }
        nav.pages {
            @if let Some(p) = previous { a href=(link(p)) id="previous" { "← previous" } }
            @if read.next < read.high_watermark { a href=(link(read.next)) id="next" { "next →" } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn browse(pairs: &[(&str, &str)]) -> Browse {
        let mut b = Browse::default();
        for (k, v) in pairs {
            let v = Some(v.to_string());
            match *k {
                "partition" => b.partition = v,
                "from" => b.from = v,
                "offset" => b.offset = v,
                "timestamp" => b.timestamp = v,
                "limit" => b.limit = v,
                "format" => b.format = v,
                "search" => b.search = v,
                _ => unreachable!(),
            }
        }
        b
    }

    #[test]
    fn a_browse_query_is_checked_field_by_field() {
        let r = parse(&browse(&[]), 3).unwrap();
        assert!(r.partition == 0 && r.from == From::End && r.limit == MESSAGES_PER_PAGE);
        let r = parse(
            &browse(&[
                ("partition", "2"),
                ("from", "offset"),
                ("offset", "7"),
                ("limit", "500"),
                ("format", "hex"),
            ]),
            3,
        )
        .unwrap();
        assert!(
            r.partition == 2
                && r.from == From::Offset(7)
                && r.limit == 500
                && r.format == Format::Hex
        );
        let r = parse(
            &browse(&[("from", "timestamp"), ("timestamp", "1970-01-02T00:00")]),
            1,
        )
        .unwrap();
        assert!(r.from == From::Timestamp(86_400_000));
        // Empty fields are absent.
        let r = parse(&browse(&[("offset", ""), ("search", " ")]), 1).unwrap();
        assert!(r.search.is_none());
        for (bad, why) in [
            (vec![("partition", "3")], "partitions 0 to 2"),
            (vec![("partition", "-1")], "partitions 0 to 2"),
            (vec![("from", "offset")], "give the offset"),
            (
                vec![("from", "offset"), ("offset", "x")],
                "not a whole number",
            ),
            (
                vec![("from", "timestamp"), ("timestamp", "yesterday")],
                "YYYY-MM-DD",
            ),
            (vec![("limit", "0")], "1 to 500"),
            (vec![("limit", "501")], "1 to 500"),
            (vec![("format", "xml")], "text, json, hex or schema"),
            (vec![("from", "middle")], "beginning, end"),
        ] {
            let err = parse(&browse(&bad), 3).err().unwrap();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let long = "x".repeat(SEARCH_TEXT_MAX + 1);
        assert!(parse(&browse(&[("search", &long)]), 1).is_err());
    }

    #[test]
    fn values_are_shown_as_text_json_or_hex_and_cut_at_the_bound() {
        let json = Bytes::from_static(br#"{"a":[1,2]}"#);
        assert_eq!(
            shown(Some(&Part::of(&json)), Format::Json).into_string(),
            "<pre>{\n  &quot;a&quot;: [\n    1,\n    2\n  ]\n}</pre>"
        );
        assert!(
            shown(Some(&Part::of(&Bytes::from_static(b"plain"))), Format::Json)
                .into_string()
                .contains("(not JSON)")
        );
        assert_eq!(
            shown_quietly(Some(&Part::of(&Bytes::from_static(b"plain"))), Format::Json)
                .into_string(),
            "<pre>plain</pre>"
        );
        assert_eq!(
            shown(Some(&Part::of(&Bytes::from_static(b"<b>"))), Format::Text).into_string(),
            "<pre>&lt;b&gt;</pre>"
        );
        assert_eq!(
            hex(&(0u8..18).collect::<Vec<_>>()),
            "00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f\n10 11"
        );
        assert_eq!(
            shown(None, Format::Hex).into_string(),
            "<span class=\"muted\">null</span>"
        );
        let big = Bytes::from(vec![b'x'; SHOWN_BYTES_MAX + 5]);
        assert!(shown(Some(&Part::of(&big)), Format::Text)
            .into_string()
            .ends_with("<span class=\"muted\">… 5 more bytes</span>"));
    }

    #[test]
    fn a_kept_record_holds_no_more_than_a_page_shows() {
        let big = Bytes::from(vec![b'v'; 5 * SHOWN_BYTES_MAX]);
        let record = ConsumerRecord {
            topic: "t".into(),
            partition: 0,
            offset: 7,
            timestamp_ms: 0,
            timestamp_type: "CreateTime",
            key: None,
            value: Some(big.clone()),
            headers: (0..HEADERS_SHOWN_MAX + 3)
                .map(|i| ("h".repeat(HEADER_NAME_SHOWN_MAX + i), Some(big.clone())))
                .collect(),
            leader_epoch: None,
        };
        let kept = Kept::of(&record);
        let value = kept.value.as_ref().unwrap();
        assert_eq!((value.head.len(), value.len), (SHOWN_BYTES_MAX, big.len()));
        assert_eq!(
            (kept.headers.len(), kept.more_headers),
            (HEADERS_SHOWN_MAX, 3)
        );
        assert!(kept
            .headers
            .iter()
            .all(|(k, v)| k.len() == HEADER_NAME_SHOWN_MAX
                && v.as_ref().unwrap().head.len() == SHOWN_BYTES_MAX));
    }
}
