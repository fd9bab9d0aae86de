//! The harness's network: one network namespace per node, each joined by a
//! veth pair to a bridge in the caller's namespace, which also holds the
//! clients' address. Faults are nftables rules and qdiscs inside the
//! node namespaces, so they touch nothing outside the test.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The clients' (the harness's) address on every test subnet: `.254`.
pub const CLIENT_HOST: u8 = 254;

/// The nftables table every fault rule lives in, in each namespace.
const TABLE: &str = "vltava_fault";

/// Runs `cmd args`, failing with its stderr if it does not succeed.
pub fn run(cmd: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The namespaces, veths and bridge of one harness run; removed on drop.
pub struct Net {
    /// Prefix of every interface and namespace name (`vlf<pid>`).
    tag: String,
    /// The /24 subnet's first three octets.
    subnet: [u8; 3],
    nodes: usize,
    /// `tc netem` exists in this kernel (else loss is an nftables rule and
    /// delay a slow link).
    pub netem: bool,
}

impl Net {
    /// Creates `nodes` namespaces `<tag>n1…` with address `subnet.i` on
    /// their `eth0`, and the bridge `<tag>br` with `subnet.254`.
    pub fn create(nodes: usize) -> Result<Net> {
        sweep_leftovers();
        let pid = std::process::id();
        let tag = format!("vlf{pid}");
        // 10.213.x.0/24, x from the pid, so two runs do not share a subnet.
        let subnet = [10, 213, (pid % 250) as u8 + 1];
        let mut net = Net {
            tag,
            subnet,
            nodes,
            netem: false,
        };
        let bridge = net.bridge();
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", net.ip(CLIENT_HOST)),
                "dev",
                &bridge,
            ],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for node in 1..=nodes {
            let ns = net.namespace(node);
            let host_end = format!("{}h{node}", net.tag);
            let node_end = format!("{}p{node}", net.tag);
            run("ip", &["netns", "add", &ns])?;
            run(
                "ip",
                &[
                    "link", "add", &host_end, "type", "veth", "peer", "name", &node_end,
                ],
            )?;
            run("ip", &["link", "set", &host_end, "master", &bridge, "up"])?;
            run("ip", &["link", "set", &node_end, "netns", &ns])?;
            net.exec(node, "ip", &["link", "set", &node_end, "name", "eth0"])?;
            net.exec(
                node,
                "ip",
                &[
                    "addr",
                    "add",
                    &format!("{}/24", net.ip(node as u8)),
                    "dev",
                    "eth0",
                ],
            )?;
            net.exec(node, "ip", &["link", "set", "eth0", "up"])?;
            net.exec(node, "ip", &["link", "set", "lo", "up"])?;
            // Every rule drops on the way in.
            net.exec(node, "nft", &["add", "table", "inet", TABLE])?;
            net.exec(
                node,
                "nft",
                &[
                    "add",
                    "chain",
                    "inet",
                    TABLE,
                    "in",
                    "{ type filter hook input priority 0; }",
                ],
            )?;
        }
        let probe = net.exec(
            1,
            "tc",
            &[
                "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "1ms",
            ],
        );
        net.netem = probe.is_ok();
        if net.netem {
            net.exec(1, "tc", &["qdisc", "del", "dev", "eth0", "root"])?;
        }
        Ok(net)
    }

    pub fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    pub fn namespace(&self, node: usize) -> String {
        format!("{}n{node}", self.tag)
    }

    /// `subnet.host`.
    pub fn ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.subnet[0], self.subnet[1], self.subnet[2], host)
    }

    /// Runs a command inside node `node`'s namespace.
    pub fn exec(&self, node: usize, cmd: &str, args: &[&str]) -> Result<()> {
        let ns = self.namespace(node);
        let mut all = vec!["netns", "exec", ns.as_str(), cmd];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    fn rule(&self, node: usize, chain: &str, rule: &str) -> Result<()> {
        let words: Vec<&str> = rule.split_whitespace().collect();
        let mut args = vec!["add", "rule", "inet", TABLE, chain];
        args.extend_from_slice(&words);
        self.exec(node, "nft", &args)
    }

    /// Packets from node `from` stop reaching node `to` (one way).
    pub fn drop_from(&self, to: usize, from: usize) -> Result<()> {
        let source = self.ip(from as u8);
        self.rule(to, "in", &format!("ip saddr {source} drop"))
    }

    /// No packet passes between any node of `a` and any node of `b`.
    pub fn split(&self, a: &[usize], b: &[usize]) -> Result<()> {
        for &x in a {
            for &y in b {
                self.drop_from(x, y)?;
                self.drop_from(y, x)?;
            }
        }
        Ok(())
    }

    /// Drops `percent` of the packets arriving at `node` from anywhere.
    pub fn lossy(&self, node: usize, percent: u32) -> Result<()> {
        self.rule(
            node,
            "in",
            &format!("numgen random mod 100 < {percent} drop"),
        )
    }

    /// Delays what `node` sends: netem when the kernel has it, else a slow
    /// link (token bucket at `slow_kbit`, queueing up to 200 ms) — this
    /// machine's kernel has no netem.
    pub fn slow(&self, node: usize, delay_ms: u32, slow_kbit: u32) -> Result<()> {
        let qdisc = match self.netem {
            true => vec![
                "netem".to_string(),
                "delay".into(),
                format!("{delay_ms}ms"),
                format!("{}ms", delay_ms / 2),
            ],
            false => vec![
                "tbf".to_string(),
                "rate".into(),
                format!("{slow_kbit}kbit"),
                "burst".into(),
                "16kb".into(),
                "latency".into(),
                "200ms".into(),
            ],
        };
        let mut args = vec!["qdisc", "add", "dev", "eth0", "root"];
        args.extend(qdisc.iter().map(String::as_str));
        self.exec(node, "tc", &args)
    }

    /// Removes every rule and qdisc from every namespace.
    pub fn heal(&self) -> Result<()> {
        for node in 1..=self.nodes {
            self.exec(node, "nft", &["flush", "chain", "inet", TABLE, "in"])?;
            // Fails when there is no qdisc to remove: nothing to heal.
            let _ = self.exec(node, "tc", &["qdisc", "del", "dev", "eth0", "root"]);
        }
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for node in 1..=self.nodes {
            let _ = run("ip", &["netns", "del", &self.namespace(node)]);
            let _ = run("ip", &["link", "del", &format!("{}h{node}", self.tag)]);
        }
        let _ = run("ip", &["link", "del", &self.bridge()]);
    }
}

/// Removes namespaces and bridges left by harness runs whose process is
/// gone (a run killed before its drop).
fn sweep_leftovers() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let names = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut dead_tags = std::collections::BTreeSet::new();
    for name in names.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix("vlf") else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('n') else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", name]);
            dead_tags.insert(format!("vlf{pid}"));
        }
    }
    for tag in dead_tags {
        let _ = run("ip", &["link", "del", &format!("{tag}br")]);
    }
}
