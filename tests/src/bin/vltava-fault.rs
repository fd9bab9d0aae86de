//! Runs the fault harness (`vltava_tests::fault`) for any seed and length:
//!
//! ```text
//! cargo build -p vltava-cli && cargo run -p vltava-tests --bin vltava-fault -- \
//!     --seed 1 --seconds 600 [--nodes 3] [--partitions 4] [--producers 3]
//! ```
//!
//! Needs root. Prints the report; exits 1 if any check failed.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use vltava_tests::fault::{run, FaultConfig};

fn main() -> Result<()> {
    let mut config = FaultConfig::new(1, Duration::from_secs(120));
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("vltava-fault [--seed N] [--seconds N] [--nodes 3-5] [--partitions N] [--producers N]");
            return Ok(());
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .with_context(|| format!("{flag}={v} is not a number"))
        };
        match flag.as_str() {
            "--seed" => config.seed = number(&value)?,
            "--seconds" => config.duration = Duration::from_secs(number(&value)?),
            "--nodes" => config.nodes = number(&value)? as usize,
            "--partitions" => config.partitions = number(&value)? as i32,
            "--producers" => config.producers = number(&value)? as usize,
            other => bail!("unknown flag {other} (see --help)"),
        }
    }
    let report = run(config)?;
    println!("{report}");
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}
