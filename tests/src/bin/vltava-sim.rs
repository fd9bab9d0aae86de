//! Runs the deterministic simulation (`vltava_tests::sim`) for many seeds:
//!
//! ```text
//! cargo run --release -p vltava-tests --bin vltava-sim -- \
//!     [--brokers [--page-cache]] [--seed N | --seeds COUNT [--first N]] [--nodes 3|5] [--seconds N] [--trace]
//! ```
//!
//! Without `--brokers` it simulates the metadata quorum alone
//! (`sim::run`); with it, whole brokers (`sim::cluster::run`), which
//! fsync every append unless `--page-cache`. Prints one
//! line per seed and a summary; a failing seed is printed with the
//! command that replays it, and the exit status is 1.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vltava_tests::sim::{cluster, run, SimConfig};

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
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--trace" {
            print_trace = true;
            continue;
        }
        if flag == "--brokers" {
            brokers = true;
            continue;
        }
        if flag == "--page-cache" {
            page_cache = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            println!(
                "vltava-sim [--brokers [--page-cache]] [--seed N | --seeds COUNT [--first N]] [--nodes 3|5] [--seconds N] [--trace]"
            );
            return Ok(());
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        let number: u64 = value
            .parse()
            .with_context(|| format!("{flag}={value} is not a number"))?;
        match flag.as_str() {
            "--seed" => (first, count) = (number, 1),
            "--seeds" => count = number,
            "--first" => first = number,
            "--nodes" => nodes = number as usize,
            "--seconds" => seconds = number,
            other => bail!("unknown flag {other} (see --help)"),
        }
    }
    let started = Instant::now();
    let (mut failed, mut simulated) = (Vec::new(), Duration::ZERO);
    for seed in first..first + count {
        if brokers {
            let config = cluster::ClusterConfig {
                seed,
                nodes,
                duration: Duration::from_secs(seconds),
                page_cache,
            };
            match cluster::run(config.clone()) {
                Ok(report) => {
                    if print_trace {
                        for line in &report.trace {
                            println!("  {line}");
                        }
                    }
                    println!("{report}");
                    simulated += report.simulated;
                    if !report.passed() {
                        failed.push(seed);
                    }
                }
                Err(e) => {
                    println!(
                        "seed {seed}: FAILED: {e:#}\nreplay: {}",
                        cluster::replay_command(&config)
                    );
                    failed.push(seed);
                }
            }
            continue;
        }
        let config = SimConfig {
            seed,
            nodes,
            duration: Duration::from_secs(seconds),
        };
        // A seed the simulation cannot even run (a node that cannot start)
        // fails like any other and the batch goes on.
        let report = match run(config.clone()) {
            Ok(report) => report,
            Err(e) => {
                println!(
                    "seed {seed}: FAILED: {e:#}\nreplay: {}",
                    vltava_tests::sim::replay_command(&config)
                );
                failed.push(seed);
                continue;
            }
        };
        if print_trace {
            for line in &report.trace {
                println!("  {line}");
            }
        }
        println!("{report}");
        simulated += report.simulated;
        if !report.passed() {
            failed.push(seed);
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
