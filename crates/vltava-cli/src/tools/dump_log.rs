//! `vltava dump-log`: `kafka-dump-log.sh` (DumpLogSegments) for a partition
//! directory's files, with Kafka's flags and output lines, reading the
//! files directly (no broker needed; safe while one runs, as it only reads).
//!
//! - `.log`: one line per batch (offsets, producer fields, position, max
//!   timestamp, size, codec, CRC and whether it matches); with
//!   `--deep-iteration` one `|` line per record, with `--print-data-log`
//!   its key and payload too. Bytes after the last whole batch are
//!   reported.
//! - `.index` / `.timeindex`: each entry, checked against the `.log` beside
//!   it (the offset index must point at the start of the batch with that
//!   base offset; the time index at the batch that set that maximum
//!   timestamp); `--verify-index-only` prints only problems and
//!   `--index-sanity-check` only checks the entries' order and bounds.
//! - `.snapshot`: the idempotent producers it holds.
//!
//! Every length and position read from a file is checked against the file
//! before it is used: this is the tool for files that may be corrupt.
//!
//! Unlike Kafka's tool, which exits 0 whatever it finds, this one exits 1
//! when a file is corrupt (a CRC that does not match, bytes that are not a
//! batch, an index entry that points elsewhere), so scripts can check
//! segments. Offsets that skip (normal after compaction) are reported but
//! are not a failure.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use clap::Args;
use vltava_record::{
    batch_total_bytes, decode_records_bounded, BatchHeader, Compression, ControlRecord, Record,
    BATCH_HEADER_BYTES, CRC_COVERED_FROM, DECOMPRESSED_BATCH_BYTES_MAX_DEFAULT,
};

use vltava_log::{OffsetEntry, TimeEntry};

use super::Failure;

/// An index is read whole; Kafka caps one at `segment.index.bytes` (10 MiB
/// by default), so a file far past that is not an index.
const INDEX_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Dump log segments, indexes and producer snapshots (kafka-dump-log.sh).
#[derive(Args, Debug)]
pub struct DumpLogArgs {
    /// REQUIRED: The comma separated list of data and index log files to be
    /// dumped.
    #[arg(
        long,
        value_delimiter = ',',
        required = true,
        value_name = "String: file1, file2, ..."
    )]
    pub files: Vec<PathBuf>,
    /// Print the records' keys and payloads (implies --deep-iteration).
    #[arg(long)]
    pub print_data_log: bool,
    /// Print every record, not only the batch headers.
    #[arg(long)]
    pub deep_iteration: bool,
    /// Check index entries against the log and print only the problems.
    #[arg(long)]
    pub verify_index_only: bool,
    /// Only check that index entries are in order and in bounds.
    #[arg(long)]
    pub index_sanity_check: bool,
    /// With --print-data-log: print only keys and payloads.
    #[arg(long)]
    pub skip_record_metadata: bool,
    /// Read at most this many bytes of each .log file.
    #[arg(long, default_value_t = i32::MAX as u64, value_name = "Integer: size")]
    pub max_bytes: u64,
    /// How far past an index entry's position its batch may end (bytes).
    #[arg(long, default_value_t = 5 * 1024 * 1024, value_name = "Integer: size")]
    pub max_message_size: u64,
}

/// What the checks found, reported on stderr after every file is dumped,
/// as Kafka's tool does.
#[derive(Default)]
struct Findings {
    /// index path -> (index offset, log offset) pairs that disagree.
    index_mismatches: BTreeMap<PathBuf, Vec<(i64, i64)>>,
    /// time index path -> (index timestamp, log timestamp).
    time_mismatches: BTreeMap<PathBuf, Vec<(i64, i64)>>,
    /// time index path -> (timestamp, previous timestamp).
    time_out_of_order: BTreeMap<PathBuf, Vec<(i64, i64)>>,
    /// time index path -> (indexed offset, log offset found or -1).
    time_offsets_missing: BTreeMap<PathBuf, Vec<(i64, i64)>>,
    /// log path -> (offset, next offset) where offsets skip.
    non_consecutive: BTreeMap<PathBuf, Vec<(i64, i64)>>,
    /// Whether anything found means a file is corrupt.
    corrupt: bool,
}

pub fn run(args: DumpLogArgs) -> anyhow::Result<()> {
    let mut findings = Findings::default();
    for file in &args.files {
        println!("Dumping {}", file.display());
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let result = match name.rsplit_once('.').map(|(_, suffix)| suffix) {
            Some("log") => dump_log(file, &args, &mut findings),
            Some("index") => dump_index(file, &args, &mut findings),
            Some("timeindex") => dump_time_index(file, &args, &mut findings),
            Some("snapshot") => dump_snapshot(file, &mut findings),
            _ => {
                eprintln!("Ignoring unknown file {}", file.display());
                Ok(())
            }
        };
        if let Err(e) = result {
            eprintln!("Error: cannot read {}: {e}", file.display());
            findings.corrupt = true;
        }
    }
    report(&findings);
    if findings.corrupt {
        // Everything was said above.
        return Err(Failure(String::new()).into());
    }
    Ok(())
}

fn report(f: &Findings) {
    for (path, pairs) in &f.index_mismatches {
        eprintln!("Mismatches in :{}", path.display());
        for (index, log) in pairs {
            eprintln!("  Index offset: {index}, log offset: {log}");
        }
    }
    for (path, pairs) in &f.time_mismatches {
        eprintln!("Found timestamp mismatch in :{}", path.display());
        for (index, log) in pairs {
            eprintln!("  Index timestamp: {index}, log timestamp: {log}");
        }
    }
    for (path, pairs) in &f.time_out_of_order {
        eprintln!("Found out of order timestamp in :{}", path.display());
        for (index, previous) in pairs {
            eprintln!("  Index timestamp: {index}, Previously indexed timestamp: {previous}");
        }
    }
    for pairs in f.time_offsets_missing.values() {
        eprintln!("The following indexed offsets are not found in the log.");
        for (index, log) in pairs {
            eprintln!("Indexed offset: {index}, found log offset: {log}");
        }
    }
    for (path, pairs) in &f.non_consecutive {
        eprintln!("Non-consecutive offsets in {}", path.display());
        for (first, second) in pairs {
            eprintln!("  {first} is followed by {second}");
        }
    }
}

/// The segment's base offset from its file name (20 digits).
fn base_offset(file: &Path) -> std::io::Result<i64> {
    file.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|o| *o >= 0)
        .ok_or_else(|| std::io::Error::other("the file name is not a segment's base offset"))
}

fn absolute(file: &Path) -> PathBuf {
    std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf())
}

/// One batch located in a `.log` file: its header and where it is. Its
/// bytes are read only when needed, a bounded chunk at a time for the CRC.
struct Located {
    position: u64,
    size: u64,
    header: BatchHeader,
}

/// Bytes read at once while checking a batch's CRC.
const CRC_CHUNK_BYTES: usize = 1 << 20;

/// Reads the batch headers of a `.log` file, one at a time, up to `limit`
/// bytes. Every batch length is checked against the bytes left in the file
/// before anything is read; reading stops at the first bytes that are not a
/// whole batch and says why.
struct BatchReader {
    file: File,
    position: u64,
    /// The file's size.
    size: u64,
    /// Where reading stops: the size, or less with `--max-bytes`.
    limit: u64,
    /// Why reading stopped before `limit`, if the file is at fault.
    stopped: Option<String>,
}

impl BatchReader {
    fn open(path: &Path, max_bytes: u64) -> std::io::Result<BatchReader> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        Ok(BatchReader {
            file,
            position: 0,
            size,
            limit: size.min(max_bytes),
            stopped: None,
        })
    }

    /// The header of the batch at `position` if a whole batch starts there
    /// within `limit`; `None` at the end, at a batch `--max-bytes` cuts
    /// (not a fault), or at bytes that cannot be a batch (then `stopped`
    /// says why).
    fn next_batch(&mut self) -> std::io::Result<Option<Located>> {
        let left = self.limit.saturating_sub(self.position);
        let left_in_file = self.size.saturating_sub(self.position);
        if left == 0 {
            return Ok(None);
        }
        if left_in_file < BATCH_HEADER_BYTES as u64 {
            self.stopped = Some(format!(
                "{left_in_file} bytes are too few for a batch header"
            ));
            return Ok(None);
        }
        let mut head = [0u8; BATCH_HEADER_BYTES];
        self.file.read_exact_at(&mut head, self.position)?;
        let total = match batch_total_bytes(&head) {
            Ok(t) => t as u64,
            Err(e) => {
                self.stopped = Some(e.to_string());
                return Ok(None);
            }
        };
        if total > left_in_file {
            self.stopped = Some(format!(
                "a batch of {total} bytes is cut off after {left_in_file} bytes"
            ));
            return Ok(None);
        }
        if total > left {
            // Whole in the file, but past --max-bytes: stop quietly.
            return Ok(None);
        }
        let header = match BatchHeader::parse(&head) {
            Ok(h) => h,
            Err(e) => {
                self.stopped = Some(e.to_string());
                return Ok(None);
            }
        };
        let located = Located {
            position: self.position,
            size: total,
            header,
        };
        self.position += total;
        Ok(Some(located))
    }

    /// Whether the batch's stored CRC matches its bytes, read in chunks.
    fn crc_valid(&self, b: &Located) -> std::io::Result<bool> {
        let mut crc = 0u32;
        let mut at = b.position + CRC_COVERED_FROM as u64;
        let end = b.position + b.size;
        let mut chunk = vec![0u8; CRC_CHUNK_BYTES.min((end - at) as usize)];
        while at < end {
            let n = CRC_CHUNK_BYTES.min((end - at) as usize);
            self.file.read_exact_at(&mut chunk[..n], at)?;
            crc = crc32c::crc32c_append(crc, &chunk[..n]);
            at += n as u64;
        }
        Ok(crc == b.header.crc)
    }

    /// The whole batch, for decoding its records (its size was checked
    /// against the file).
    fn bytes(&self, b: &Located) -> std::io::Result<Vec<u8>> {
        let mut bytes = vec![0u8; b.size as usize];
        self.file.read_exact_at(&mut bytes, b.position)?;
        Ok(bytes)
    }
}

fn codec_name(attributes: i16) -> &'static str {
    match Compression::from_attributes(attributes) {
        Ok(Compression::None) => "none",
        Ok(Compression::Gzip) => "gzip",
        Ok(Compression::Snappy) => "snappy",
        Ok(Compression::Lz4) => "lz4",
        Ok(Compression::Zstd) => "zstd",
        Err(_) => "unknown",
    }
}

fn timestamp_type(header: &BatchHeader) -> &'static str {
    if header.is_log_append_time() {
        "LogAppendTime"
    } else {
        "CreateTime"
    }
}

/// Kafka's batch line.
fn batch_line(b: &Located, crc_valid: bool) -> String {
    let h = &b.header;
    let delete_horizon = match h.delete_horizon_ms() {
        Some(ms) => format!("OptionalLong[{ms}]"),
        None => "OptionalLong.empty".to_string(),
    };
    format!(
        "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} producerId: {} producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} isControl: {} deleteHorizonMs: {} position: {} {}: {} size: {} magic: {} compresscodec: {} crc: {} isvalid: {}",
        h.base_offset,
        h.last_offset(),
        h.records_count,
        h.base_sequence,
        h.last_sequence(),
        h.producer_id,
        h.producer_epoch,
        h.partition_leader_epoch,
        h.is_transactional(),
        h.is_control(),
        delete_horizon,
        b.position,
        timestamp_type(h),
        h.max_timestamp,
        b.size,
        h.magic,
        codec_name(h.attributes),
        h.crc,
        crc_valid
    )
}

fn dump_log(file: &Path, args: &DumpLogArgs, findings: &mut Findings) -> std::io::Result<()> {
    println!("Log starting offset: {}", base_offset(file)?);
    let deep = args.deep_iteration || args.print_data_log;
    let mut reader = BatchReader::open(file, args.max_bytes)?;
    let mut last_offset: Option<i64> = None;
    while let Some(batch) = reader.next_batch()? {
        let crc_valid = reader.crc_valid(&batch)?;
        if !crc_valid {
            findings.corrupt = true;
        }
        println!("{}", batch_line(&batch, crc_valid));
        if !deep {
            continue;
        }
        // Decoding needs the whole batch in memory: at most the file's
        // size, and a batch length is at most 2 GiB.
        let bytes = reader.bytes(&batch)?;
        match decode_records_bounded(&bytes, DECOMPRESSED_BATCH_BYTES_MAX_DEFAULT) {
            Ok(records) => {
                for r in &records {
                    if let Some(last) = last_offset {
                        if r.offset != last + 1 {
                            findings
                                .non_consecutive
                                .entry(absolute(file))
                                .or_default()
                                .push((last, r.offset));
                        }
                    }
                    last_offset = Some(r.offset);
                    println!("{}", record_line(&batch.header, r, args));
                }
            }
            Err(e) => {
                findings.corrupt = true;
                eprintln!(
                    "Error: the records of the batch at position {} in {} cannot be read: {e}",
                    batch.position,
                    file.display()
                );
            }
        }
    }
    if let Some(why) = &reader.stopped {
        findings.corrupt = true;
        // As Kafka: the count of bytes after the last batch is printed only
        // when the whole file was read.
        if args.max_bytes >= reader.size {
            let trailing = reader.size - reader.position;
            let name = file
                .file_name()
                .map_or(file.as_os_str(), |n| n)
                .to_string_lossy();
            println!("Found {trailing} invalid bytes at the end of {name}");
        }
        eprintln!(
            "Error: {} at position {}: {why}",
            file.display(),
            reader.position
        );
    }
    Ok(())
}

/// Kafka's `|` record line.
fn record_line(h: &BatchHeader, r: &Record, args: &DumpLogArgs) -> String {
    let mut line = String::new();
    let mut prefix = "| ";
    if !args.skip_record_metadata {
        let size = |b: &Option<bytes::Bytes>| b.as_ref().map_or(-1, |b| b.len() as i64);
        let keys: Vec<String> = r.headers.keys().map(|k| k.to_string()).collect();
        // From the batch, as Kafka derives it: -1 when the batch has no
        // sequence (the decoder would add the delta to -1).
        let sequence = if h.base_sequence < 0 {
            -1
        } else {
            let delta = i32::try_from(r.offset - h.base_offset).unwrap_or(0);
            vltava_record::increment_sequence(h.base_sequence, delta)
        };
        line.push_str(&format!(
            "{prefix}offset: {} {}: {} keySize: {} valueSize: {} sequence: {} headerKeys: [{}]",
            r.offset,
            timestamp_type(h),
            r.timestamp,
            size(&r.key),
            size(&r.value),
            sequence,
            keys.join(",")
        ));
        prefix = " ";
        if h.is_control() {
            line.push_str(&control_text(r));
        }
    }
    if args.print_data_log && !h.is_control() {
        if let Some(key) = &r.key {
            line.push_str(&format!("{prefix}key: {}", String::from_utf8_lossy(key)));
        }
        if let Some(value) = &r.value {
            line.push_str(&format!(" payload: {}", String::from_utf8_lossy(value)));
        }
    }
    line
}

/// What a control record says: a transaction marker, or its type id.
fn control_text(r: &Record) -> String {
    match ControlRecord::parse(r.key.as_deref(), r.value.as_deref()) {
        ControlRecord::Abort { coordinator_epoch } => {
            format!(" endTxnMarker: ABORT coordinatorEpoch: {coordinator_epoch}")
        }
        ControlRecord::Commit { coordinator_epoch } => {
            format!(" endTxnMarker: COMMIT coordinatorEpoch: {coordinator_epoch}")
        }
        ControlRecord::Other(kind) => format!(" controlType: UNKNOWN({kind})"),
    }
}

/// An error about the `.log` an index is checked against, naming that file
/// (the caller reports it under the index's name).
fn log_error(log: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", log.display()))
}

/// The `.log` beside an index file.
fn log_beside(index: &Path) -> std::io::Result<PathBuf> {
    let base = base_offset(index)?;
    Ok(index.with_file_name(format!("{base:020}.log")))
}

/// An index file's entries, each parsed by `parse` from its bytes and the
/// segment's base offset (`None`: an offset past the largest). A size that
/// is not whole entries, or an unparsable entry, is reported as corruption
/// and gives `None`.
fn read_index<T, const N: usize>(
    file: &Path,
    kind: &str,
    findings: &mut Findings,
    parse: impl Fn(i64, &[u8; N]) -> Option<T>,
) -> std::io::Result<Option<Vec<T>>> {
    let entry_bytes = N as u64;
    let base = base_offset(file)?;
    let size = std::fs::metadata(file)?.len();
    if size > INDEX_FILE_BYTES_MAX {
        eprintln!(
            "Index file {} is corrupt, found {size} bytes, more than an index holds ({INDEX_FILE_BYTES_MAX}).",
            file.display()
        );
        findings.corrupt = true;
        return Ok(None);
    }
    if size % entry_bytes != 0 {
        eprintln!(
            "Index file {} is corrupt, found {size} bytes which is not a multiple of {entry_bytes}.",
            file.display()
        );
        findings.corrupt = true;
        return Ok(None);
    }
    let bytes = std::fs::read(file)?;
    let entries = bytes
        .chunks_exact(N)
        .map(|e| parse(base, e.try_into().ok()?))
        .collect::<Option<Vec<T>>>();
    if entries.is_none() {
        eprintln!(
            "Corrupt {kind} found, {kind} file ({}) has an entry past the largest offset",
            file.display()
        );
        findings.corrupt = true;
    }
    Ok(entries)
}

fn dump_index(file: &Path, args: &DumpLogArgs, findings: &mut Findings) -> std::io::Result<()> {
    let Some(entries) = read_index(file, "index", findings, |base, bytes| {
        let e = OffsetEntry::from_bytes(bytes);
        let offset = base.checked_add(i64::from(e.relative_offset))?;
        Some((offset, u64::from(e.position)))
    })?
    else {
        return Ok(());
    };
    if entries.is_empty() {
        if args.index_sanity_check {
            println!("{} passed sanity check.", file.display());
        } else {
            println!("{} is empty.", file.display());
        }
        return Ok(());
    }
    let log = log_beside(file)?;
    let log_size = std::fs::metadata(&log)
        .map_err(|e| log_error(&log, e))?
        .len();
    if args.index_sanity_check {
        let problem = entries
            .windows(2)
            .find(|w| w[1].0 <= w[0].0 || w[1].1 <= w[0].1);
        let out_of_bounds = entries.iter().find(|(_, p)| *p >= log_size);
        match (problem, out_of_bounds) {
            (Some(w), _) => {
                eprintln!(
                    "Corrupt index found, index file ({}) has entry (offset {}, position {}) after (offset {}, position {}): entries must increase in both",
                    file.display(), w[1].0, w[1].1, w[0].0, w[0].1
                );
                findings.corrupt = true;
            }
            (None, Some((o, p))) => {
                eprintln!(
                    "Corrupt index found, index file ({}) has entry (offset {o}, position {p}) past the end of {} ({log_size} bytes)",
                    file.display(),
                    log.display()
                );
                findings.corrupt = true;
            }
            (None, None) => println!("{} passed sanity check.", file.display()),
        }
        return Ok(());
    }
    let mut reader = BatchReader::open(&log, u64::MAX)?;
    for (offset, position) in entries {
        reader.position = position.min(reader.size);
        reader.limit = reader
            .size
            .min(reader.position.saturating_add(args.max_message_size));
        let found = reader.next_batch()?;
        // Vltava indexes a batch by its base offset, Kafka's segments by
        // its last offset: either points at the right batch.
        let matches = found
            .as_ref()
            .is_some_and(|b| b.header.base_offset == offset || b.header.last_offset() == offset);
        let log_offset = found.map_or(-1, |b| b.header.base_offset);
        if !matches {
            findings
                .index_mismatches
                .entry(absolute(file))
                .or_default()
                .push((offset, log_offset));
            findings.corrupt = true;
        }
        if !args.verify_index_only {
            println!("offset: {offset} position: {position}");
        }
    }
    Ok(())
}

fn dump_time_index(
    file: &Path,
    args: &DumpLogArgs,
    findings: &mut Findings,
) -> std::io::Result<()> {
    let Some(entries) = read_index(file, "time index", findings, |base, bytes| {
        let e = TimeEntry::from_bytes(bytes);
        Some((e.timestamp, base.checked_add(i64::from(e.relative_offset))?))
    })?
    else {
        return Ok(());
    };
    if args.index_sanity_check {
        match entries
            .windows(2)
            .find(|w| w[1].0 <= w[0].0 || w[1].1 < w[0].1)
        {
            Some(w) => {
                eprintln!(
                    "Corrupt time index found, time index file ({}) has entry (timestamp {}, offset {}) after (timestamp {}, offset {}): timestamps must increase and offsets must not decrease",
                    file.display(), w[1].0, w[1].1, w[0].0, w[0].1
                );
                findings.corrupt = true;
            }
            None => println!("{} passed sanity check.", file.display()),
        }
        return Ok(());
    }
    if entries.is_empty() {
        return Ok(());
    }
    // Every batch of the segment by base offset: (last offset, max
    // timestamp), from the headers alone.
    let mut batches: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let log = log_beside(file)?;
    let mut reader = BatchReader::open(&log, u64::MAX).map_err(|e| log_error(&log, e))?;
    while let Some(b) = reader.next_batch()? {
        batches.insert(
            b.header.base_offset,
            (b.header.last_offset(), b.header.max_timestamp),
        );
    }
    let path = absolute(file);
    let mut previous: Option<i64> = None;
    for (timestamp, offset) in entries {
        // Vltava's entry names the batch's base offset, Kafka's the offset
        // of the record with the maximum timestamp: take the batch that
        // holds the offset.
        let holder = batches
            .range(..=offset)
            .next_back()
            .filter(|(_, (last, _))| *last >= offset);
        match holder {
            Some((_, (_, max_timestamp))) => {
                if *max_timestamp != timestamp {
                    findings
                        .time_mismatches
                        .entry(path.clone())
                        .or_default()
                        .push((timestamp, *max_timestamp));
                    findings.corrupt = true;
                }
            }
            None => {
                // The last offset of the batch before the gap, if any.
                let found = batches
                    .range(..=offset)
                    .next_back()
                    .map_or(-1, |(_, (last, _))| *last);
                findings
                    .time_offsets_missing
                    .entry(path.clone())
                    .or_default()
                    .push((offset, found));
                findings.corrupt = true;
            }
        }
        if let Some(prev) = previous.filter(|p| *p >= timestamp) {
            findings
                .time_out_of_order
                .entry(path.clone())
                .or_default()
                .push((timestamp, prev));
            findings.corrupt = true;
        }
        if !args.verify_index_only {
            println!("timestamp: {timestamp} offset: {offset}");
        }
        previous = Some(timestamp);
    }
    Ok(())
}

fn dump_snapshot(file: &Path, findings: &mut Findings) -> std::io::Result<()> {
    let payload = match vltava_log::snapshot::read_file(file)? {
        Ok(p) => p,
        Err(why) => {
            eprintln!(
                "Error: {} is not a valid producer snapshot: {why}",
                file.display()
            );
            findings.corrupt = true;
            return Ok(());
        }
    };
    let state = match vltava_broker::ProducerStateMap::from_snapshot(&payload) {
        Ok(s) => s,
        Err(why) => {
            eprintln!("Error: {} does not decode: {why}", file.display());
            findings.corrupt = true;
            return Ok(());
        }
    };
    for p in state.summaries() {
        let mut line = format!(
            "producerId: {} producerEpoch: {} coordinatorEpoch: -1 currentTxnFirstOffset: OptionalLong.empty lastTimestamp: {} ",
            p.producer_id, p.producer_epoch, p.last_timestamp_ms
        );
        if let Some(b) = p.newest_batch {
            let delta = i64::from(b.last_sequence) - i64::from(b.first_sequence);
            let delta = if delta < 0 {
                delta + i64::from(i32::MAX) + 1
            } else {
                delta
            };
            let Some(last_offset) = b.base_offset.checked_add(delta) else {
                eprintln!(
                    "Error: {} holds producer {} with offset {} past the largest offset",
                    file.display(),
                    p.producer_id,
                    b.base_offset
                );
                findings.corrupt = true;
                continue;
            };
            line.push_str(&format!(
                "firstSequence: {} lastSequence: {} lastOffset: {} offsetDelta: {} timestamp: {}",
                b.first_sequence, b.last_sequence, last_offset, delta, p.last_timestamp_ms
            ));
        }
        println!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_records_read_as_kafka_prints_them() {
        let mut r = Record {
            transactional: true,
            control: true,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: 1,
            producer_epoch: 0,
            timestamp_type: vltava_record::TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 0,
            key: Some(bytes::Bytes::from_static(&[0, 0, 0, 1])),
            value: Some(bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 7])),
            headers: Default::default(),
        };
        assert_eq!(
            control_text(&r),
            " endTxnMarker: COMMIT coordinatorEpoch: 7"
        );
        r.key = Some(bytes::Bytes::from_static(&[0, 0, 0, 5]));
        assert_eq!(control_text(&r), " controlType: UNKNOWN(5)");
        r.key = Some(bytes::Bytes::from_static(&[0]));
        assert_eq!(control_text(&r), " controlType: UNKNOWN(-1)");
    }
}
