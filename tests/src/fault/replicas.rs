//! After the heal: every replica's log, read from its files, byte for byte
//! the same below the high watermark.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How long replicas may take to reach the high watermark after the heal.
pub const CATCH_UP_BOUND: Duration = Duration::from_secs(60);

/// A batch header's fixed part: base offset (8), length (4).
const LOG_OVERHEAD: usize = 12;
/// Where a batch's last offset delta sits.
const LAST_OFFSET_DELTA_AT: usize = 23;

/// The whole batches of one partition's segment files (in offset order)
/// whose offsets all lie below `below`: (base offset, bytes).
pub fn batches_below(partition_dir: &Path, below: i64) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut segments: Vec<_> = std::fs::read_dir(partition_dir)
        .with_context(|| format!("reading {}", partition_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let mut out = Vec::new();
    for segment in segments {
        let bytes = std::fs::read(&segment)?;
        let mut pos = 0;
        while pos + LOG_OVERHEAD <= bytes.len() {
            let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into()?);
            let length = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into()?);
            let Ok(length) = usize::try_from(length) else {
                break;
            };
            let end = pos + LOG_OVERHEAD + length;
            if end > bytes.len() || length < LAST_OFFSET_DELTA_AT + 4 - LOG_OVERHEAD {
                break;
            }
            let delta = i32::from_be_bytes(
                bytes[pos + LAST_OFFSET_DELTA_AT..pos + LAST_OFFSET_DELTA_AT + 4].try_into()?,
            );
            if base + i64::from(delta) < below {
                out.push((base, bytes[pos..end].to_vec()));
            }
            pos = end;
        }
    }
    Ok(out)
}

/// Next offset after the last whole batch below nothing: the log end.
fn log_end(batches: &[(i64, Vec<u8>)]) -> i64 {
    batches.last().map_or(0, |(base, bytes)| {
        let delta = i32::from_be_bytes(
            bytes[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
                .try_into()
                .expect("4 bytes"),
        );
        base + i64::from(delta) + 1
    })
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
    data_dirs: &BTreeMap<i32, std::path::PathBuf>,
    topic: &str,
    high_watermarks: &BTreeMap<i32, i64>,
    replicas: &BTreeMap<i32, Vec<i32>>,
) -> Result<Comparison> {
    let mut out = Comparison::default();
    for (&partition, &hw) in high_watermarks {
        let dir_name = format!("{topic}-{partition}");
        let deadline = Instant::now() + CATCH_UP_BOUND;
        let logs = loop {
            let mut logs = BTreeMap::new();
            for node in replicas.get(&partition).into_iter().flatten() {
                let dir = data_dirs[node].join(&dir_name);
                logs.insert(*node, batches_below(&dir, hw)?);
            }
            let behind: Vec<i32> = logs
                .iter()
                .filter(|(_, b)| log_end(b) < hw)
                .map(|(n, _)| *n)
                .collect();
            if behind.is_empty() || Instant::now() > deadline {
                for node in behind {
                    out.differences.push(format!(
                        "partition {partition}: replica {node} holds up to {} of high watermark {hw} after {CATCH_UP_BOUND:?}",
                        log_end(&logs[&node])
                    ));
                }
                break logs;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let mut nodes = logs.iter();
        let Some((first_node, first)) = nodes.next() else {
            continue;
        };
        let mut same = true;
        for (node, other) in nodes {
            out.bytes += other.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
            if let Some(i) =
                (0..first.len().max(other.len())).find(|&i| first.get(i) != other.get(i))
            {
                same = false;
                out.differences.push(format!(
                    "partition {partition}: replicas {first_node} and {node} differ at batch {i} (base offsets {:?} / {:?})",
                    first.get(i).map(|b| b.0),
                    other.get(i).map(|b| b.0)
                ));
            }
        }
        out.bytes += first.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        if same {
            out.identical += 1;
        }
    }
    Ok(out)
}
