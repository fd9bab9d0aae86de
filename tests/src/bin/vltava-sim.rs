//! Runs the deterministic simulation (`vltava_tests::sim`) for many seeds:
//!
//! ```text
//! cargo run --release -p vltava-tests --bin vltava-sim -- \
//!     [--brokers [--page-cache]] [--slow-disks] [--seed N | --seeds COUNT [--first N]] [--nodes 3|5] [--seconds N] [--trace]
//! ```
//!
//! Without `--brokers` it simulates the metadata quorum alone
//! (`sim::run`); with it, whole brokers (`sim::cluster::run`), which
//! fsync every append unless `--page-cache`. `--slow-disks` adds slow
//! disks to the faults, on a schedule of their own. Prints one
//! line per seed and a summary; a failing seed is printed with the
//! command that replays it, and the exit status is 1.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vltava_tests::sim::{cluster, run, SimConfig};

/// The number given after `flag`.
fn value_of(flag: &str, value: Option<String>) -> Result<u64> {
    let value = value.with_context(|| format!("{flag} needs a value"))?;
    value
        .parse()
        .with_context(|| format!("{flag}={value} is not a number"))
}

fn main() -> Result<()> {
    // RUST_LOG=warn shows the nodes' own log lines.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let (mut first, mut count, mut nodes, mut seconds) = (1u64, 1u64, 3usize, 30u64);
    let (mut print_trace, mut brokers, mut page_cache) = (false, false, false);
    let mut slow_disks = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut number = || value_of(&flag, args.next());
        match flag.as_str() {
            "--trace" => print_trace = true,
            "--brokers" => brokers = true,
            "--page-cache" => page_cache = true,
            "--slow-disks" => slow_disks = true,
            "--help" | "-h" => {
                println!(
                    "vltava-sim [--brokers [--page-cache]] [--slow-disks] [--seed N | --seeds COUNT [--first N]] [--nodes 3|5] [--seconds N] [--trace]"
                );
                return Ok(());
            }
            "--seed" => (first, count) = (number()?, 1),
            "--seeds" => count = number()?,
            "--first" => first = number()?,
            "--nodes" => nodes = number()? as usize,
            "--seconds" => seconds = number()?,
            other => bail!("unknown flag {other} (see --help)"),
        }
    }
    if page_cache && !brokers {
        bail!("--page-cache is a setting of the brokers' simulation: add --brokers");
    }
    let started = Instant::now();
    let (mut failed, mut simulated) = (Vec::new(), Duration::ZERO);
    for seed in first..first + count {
        let duration = Duration::from_secs(seconds);
        // Either simulation, as (trace, report line, simulated time,
        // passed); a seed the simulation cannot even run (a node that
        // cannot start) fails like any other and the batch goes on.
        let outcome = match brokers {
            true => {
                let config = cluster::ClusterConfig {
                    seed,
                    nodes,
                    duration,
                    page_cache,
                    slow_disks,
                };
                cluster::run(config.clone())
                    .map(|r| (r.trace.clone(), r.to_string(), r.simulated, r.passed()))
                    .map_err(|e| (e, cluster::replay_command(&config)))
            }
            false => {
                let config = SimConfig {
                    seed,
                    nodes,
                    duration,
                    slow_disks,
                };
                run(config.clone())
                    .map(|r| (r.trace.clone(), r.to_string(), r.simulated, r.passed()))
                    .map_err(|e| (e, vltava_tests::sim::replay_command(&config)))
            }
        };
        match outcome {
            Ok((trace, line, took, passed)) => {
                if print_trace {
                    for line in &trace {
                        println!("  {line}");
                    }
                }
                println!("{line}");
                simulated += took;
                if !passed {
                    failed.push(seed);
                }
            }
            Err((e, replay)) => {
                println!("seed {seed}: FAILED: {e:#}\nreplay: {replay}");
                failed.push(seed);
            }
        }
    }
    println!(
        "{count} seeds, {:.2} simulated hours in {:.0?}, {} failed {failed:?}",
        simulated.as_secs_f64() / 3600.0,
        started.elapsed(),
        failed.len()
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
