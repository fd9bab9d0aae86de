//! After the heal: every replica's log, read from its files, byte for byte
//! the same below the high watermark.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use vltava_record::{batch_total_bytes, BatchHeader};

/// How long replicas may take to reach the high watermark after the heal.
pub const CATCH_UP_BOUND: Duration = Duration::from_secs(60);

/// One whole batch of a replica's log.
#[derive(Debug, PartialEq, Eq)]
pub struct Batch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub bytes: Vec<u8>,
}

/// The whole batches of one partition's segment files, in offset order,
/// whose offsets all lie below `below`. Parsed with vltava-record's
/// checks; a batch cut off at the end of a file (one being written) ends
/// that file, and anything else unreadable is an error naming the file
/// and byte.
pub fn batches_below(partition_dir: &Path, below: i64) -> Result<Vec<Batch>> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(partition_dir)
        .with_context(|| format!("reading {}", partition_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let mut out = Vec::new();
    for segment in segments {
        let bytes = std::fs::read(&segment)?;
        let mut pos = 0;
        while pos < bytes.len() {
            let rest = &bytes[pos..];
            let parsed =
                batch_total_bytes(rest).and_then(|total| Ok((total, BatchHeader::parse(rest)?)));
            let (total, header) = match parsed {
                Ok((total, _)) if total > rest.len() => break,
                Ok(parsed) => parsed,
                Err(e) => bail!("{} at byte {pos}: {e}", segment.display()),
            };
            if header.last_offset() < below {
                out.push(Batch {
                    base_offset: header.base_offset,
                    last_offset: header.last_offset(),
                    bytes: rest[..total].to_vec(),
                });
            }
            pos += total;
        }
    }
    Ok(out)
}

/// Outcome of comparing one partition's replicas.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Partitions whose replicas all hold the same batches below the HW.
    pub identical: usize,
    /// Differences, described.
    pub differences: Vec<String>,
    /// Bytes compared, over all replicas.
    pub bytes: u64,
}

/// Waits until each replica (node data directories by node id) holds the
/// high watermark, then compares their batches below it.
pub fn compare(
    data_dirs: &BTreeMap<i32, PathBuf>,
    topic: &str,
    high_watermarks: &BTreeMap<i32, i64>,
    replicas: &BTreeMap<i32, Vec<i32>>,
) -> Comparison {
    let mut out = Comparison::default();
    for (&partition, &hw) in high_watermarks {
        let dir_name = format!("{topic}-{partition}");
        let read = |node: i32| batches_below(&data_dirs[&node].join(&dir_name), hw);
        let nodes = replicas.get(&partition).cloned().unwrap_or_default();
        if nodes.len() < 2 {
            out.differences.push(format!(
                "partition {partition}: replicas {nodes:?}, nothing to compare"
            ));
            continue;
        }
        let log_end = |batches: &[Batch]| batches.last().map_or(0, |b| b.last_offset + 1);
        // Each replica holds the high watermark, or the bound runs out.
        crate::wait_until(CATCH_UP_BOUND, || {
            nodes
                .iter()
                .all(|&n| read(n).map_or(true, |b| log_end(&b) >= hw))
        });
        let mut logs = BTreeMap::new();
        for &node in &nodes {
            match read(node) {
                Ok(batches) if log_end(&batches) < hw => out.differences.push(format!(
                    "partition {partition}: replica {node} holds up to {} of high watermark {hw} after {CATCH_UP_BOUND:?}",
                    log_end(&batches)
                )),
                Ok(batches) => {
                    out.bytes += batches.iter().map(|b| b.bytes.len() as u64).sum::<u64>();
                    logs.insert(node, batches);
                }
                Err(e) => out
                    .differences
                    .push(format!("partition {partition}: replica {node}: {e}")),
            }
        }
        if logs.len() < nodes.len() {
            continue;
        }
        let (first_node, first) = logs.iter().next().expect("two or more");
        let mut same = true;
        for (node, other) in logs.iter().skip(1) {
            if let Some(i) =
                (0..first.len().max(other.len())).find(|&i| first.get(i) != other.get(i))
            {
                same = false;
                out.differences.push(format!(
                    "partition {partition}: replicas {first_node} and {node} differ at batch {i} (base offsets {:?} / {:?})",
                    first.get(i).map(|b| b.base_offset),
                    other.get(i).map(|b| b.base_offset)
                ));
            }
        }
        if same {
            out.identical += 1;
        }
    }
    out
}
