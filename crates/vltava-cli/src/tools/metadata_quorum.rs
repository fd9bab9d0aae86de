//! `vltava metadata-quorum`: `kafka-metadata-quorum.sh describe --status`
//! and `--replication [--human-readable]`, with its output, from
//! DescribeQuorum.
//!
//! `--bootstrap-controller` is refused: Kafka's controllers answer the Kafka
//! protocol on their controller listener, Vltava's quorum speaks its own
//! RPCs there, and every Vltava node answers DescribeQuorum on its broker
//! listener, so `--bootstrap-server` is the one to use.

use clap::{Args, Subcommand};
use vltava_client::admin::{QuorumInfo, QuorumReplica};
use vltava_client::Admin;

use super::{
    connect_with, fail, kafka_uuid, now_ms, read_command_config, BOOTSTRAP_DEFAULT, BOOTSTRAP_ENV,
};

/// Describe the metadata quorum (kafka-metadata-quorum.sh).
#[derive(Args, Debug)]
pub struct MetadataQuorumArgs {
    /// A broker to ask; default $VLTAVA_BOOTSTRAP, else 127.0.0.1:9092.
    #[arg(long, env = BOOTSTRAP_ENV, default_value = BOOTSTRAP_DEFAULT, value_name = "host:port")]
    pub bootstrap_server: String,
    /// Refused: Vltava's nodes answer on their broker listeners (use
    /// --bootstrap-server).
    #[arg(long, value_name = "host:port")]
    pub bootstrap_controller: Option<String>,
    /// Client settings for the admin connection (client.id); security
    /// settings and anything else are refused, never ignored.
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<String>,
    #[command(subcommand)]
    pub command: QuorumCommand,
}

#[derive(Subcommand, Debug)]
pub enum QuorumCommand {
    /// Describe the metadata quorum info.
    Describe {
        /// A short summary of the quorum status.
        #[arg(long)]
        status: bool,
        /// Detailed information about the status of replication.
        #[arg(long)]
        replication: bool,
        /// Human-readable output (with --replication).
        #[arg(long)]
        human_readable: bool,
    },
}

pub async fn run(args: MetadataQuorumArgs) -> anyhow::Result<()> {
    if let Some(controller) = &args.bootstrap_controller {
        return fail(format!(
            "--bootstrap-controller {controller}: Vltava's controllers answer DescribeQuorum on their broker listeners, not the controller listener; use --bootstrap-server"
        ));
    }
    let QuorumCommand::Describe {
        status,
        replication,
        human_readable,
    } = args.command;
    // Kafka's checks, in its order and words.
    if status && replication {
        return fail(
            "Only one of --status or --replication should be specified with describe sub-command",
        );
    }
    if status && human_readable {
        return fail("The option --human-readable is only supported along with --replication");
    }
    if !status && !replication {
        return fail(
            "One of --status or --replication must be specified with describe sub-command",
        );
    }
    let command = read_command_config(args.command_config.as_deref())?;
    let client = connect_with(&args.bootstrap_server, &command, "vltava-metadata-quorum").await?;
    let admin = Admin::new(client);
    let quorum = match admin.describe_quorum().await {
        Ok(q) => q,
        Err(e) => return fail(format!("Error: {e}")),
    };
    let Some(leader) = quorum.voters.iter().find(|v| v.id == quorum.leader_id) else {
        return fail(format!(
            "Error: the quorum's leader {} is not among its voters",
            quorum.leader_id
        ));
    };
    if replication {
        print!(
            "{}",
            replication_table(&quorum, leader, human_readable, now_ms())?
        );
        return Ok(());
    }
    let cluster = admin.describe_cluster().await?;
    print!(
        "{}",
        status_text(
            cluster.cluster_id.as_deref().unwrap_or("null"),
            &quorum,
            leader
        )
    );
    Ok(())
}

fn status_text(cluster_id: &str, quorum: &QuorumInfo, leader: &QuorumReplica) -> String {
    // The voter furthest behind, the leader itself when none is.
    let laggard = quorum
        .voters
        .iter()
        .min_by_key(|v| v.log_end_offset)
        .unwrap_or(leader);
    let lag_time_ms = if laggard.id == leader.id {
        0
    } else if leader.last_caught_up_timestamp >= 0 && laggard.last_caught_up_timestamp >= 0 {
        leader.last_caught_up_timestamp - laggard.last_caught_up_timestamp
    } else {
        -1
    };
    format!(
        "ClusterId:              {cluster_id}\n\
         LeaderId:               {}\n\
         LeaderEpoch:            {}\n\
         HighWatermark:          {}\n\
         MaxFollowerLag:         {}\n\
         MaxFollowerLagTimeMs:   {lag_time_ms}\n\
         CurrentVoters:          {}\n\
         CurrentObservers:       {}\n",
        quorum.leader_id,
        quorum.leader_epoch,
        quorum.high_watermark,
        leader.log_end_offset - laggard.log_end_offset,
        replicas_json(quorum, &quorum.voters),
        replicas_json(quorum, &quorum.observers),
    )
}

/// `[{"id": 1, "directoryId": "...", "endpoints": ["C://h:9093"]}, ...]`,
/// leaving out an unknown directory id and empty endpoints, as Kafka does.
fn replicas_json(quorum: &QuorumInfo, replicas: &[QuorumReplica]) -> String {
    let items: Vec<String> = replicas
        .iter()
        .map(|r| {
            let mut item = format!("{{\"id\": {}", r.id);
            if !r.directory_id.is_nil() {
                item.push_str(&format!(
                    ", \"directoryId\": \"{}\"",
                    kafka_uuid(&r.directory_id)
                ));
            }
            if let Some(endpoints) = quorum.endpoints.get(&r.id).filter(|e| !e.is_empty()) {
                let quoted: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
                item.push_str(&format!(", \"endpoints\": [{}]", quoted.join(", ")));
            }
            item.push('}');
            item
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn replication_table(
    quorum: &QuorumInfo,
    leader: &QuorumReplica,
    human_readable: bool,
    now_ms: i64,
) -> anyhow::Result<String> {
    let time = |ms: i64, what: &str| -> anyhow::Result<String> {
        if ms < 0 {
            return Ok("-1".to_string());
        }
        if !human_readable {
            return Ok(ms.to_string());
        }
        if ms <= 0 || ms > now_ms {
            return fail(format!(
                "Error while computing relative time, possible drift in system clock.\nCurrent timestamp is {now_ms}, {what} timestamp is {ms}"
            ));
        }
        Ok(format!("{} ms ago", now_ms - ms))
    };
    let mut rows = vec![[
        "NodeId",
        "DirectoryId",
        "LogEndOffset",
        "Lag",
        "LastFetchTimestamp",
        "LastCaughtUpTimestamp",
        "Status",
    ]
    .map(String::from)];
    let followers = quorum.voters.iter().filter(|v| v.id != leader.id);
    let ordered = std::iter::once((leader, "Leader"))
        .chain(followers.map(|v| (v, "Follower")))
        .chain(quorum.observers.iter().map(|o| (o, "Observer")));
    for (replica, status) in ordered {
        rows.push([
            replica.id.to_string(),
            kafka_uuid(&replica.directory_id),
            replica.log_end_offset.to_string(),
            (leader.log_end_offset - replica.log_end_offset).to_string(),
            time(replica.last_fetch_timestamp, "last fetch")?,
            time(replica.last_caught_up_timestamp, "last caught up")?,
            status.to_string(),
        ]);
    }
    // Kafka's table: each cell padded to its column's width, then a tab.
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        for (cell, width) in row.iter().zip(&widths) {
            out.push_str(&format!("{cell:<width$}\t"));
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(id: i32, end: i64, fetch: i64, caught_up: i64) -> QuorumReplica {
        QuorumReplica {
            id,
            directory_id: uuid::Uuid::nil(),
            log_end_offset: end,
            last_fetch_timestamp: fetch,
            last_caught_up_timestamp: caught_up,
        }
    }

    fn three_voters() -> QuorumInfo {
        QuorumInfo {
            leader_id: 2,
            leader_epoch: 7,
            high_watermark: 40,
            voters: vec![
                replica(1, 38, 1_000, 900),
                replica(2, 40, 1_050, 1_050),
                replica(3, 40, 1_040, 1_040),
            ],
            observers: vec![replica(4, 35, 1_010, -1)],
            endpoints: [(2, vec!["CONTROLLER://h2:9093".to_string()])].into(),
        }
    }

    /// Kafka's layout and arithmetic: the lag of the furthest voter behind
    /// and the gap between its and the leader's catch-up times.
    #[test]
    fn status_reads_as_kafkas() {
        let q = three_voters();
        assert_eq!(
            status_text("c1", &q, &q.voters[1]),
            "ClusterId:              c1\n\
             LeaderId:               2\n\
             LeaderEpoch:            7\n\
             HighWatermark:          40\n\
             MaxFollowerLag:         2\n\
             MaxFollowerLagTimeMs:   150\n\
             CurrentVoters:          [{\"id\": 1}, {\"id\": 2, \"endpoints\": [\"CONTROLLER://h2:9093\"]}, {\"id\": 3}]\n\
             CurrentObservers:       [{\"id\": 4}]\n"
        );
    }

    #[test]
    fn replication_lists_leader_followers_observers_in_columns() {
        let q = three_voters();
        let zero = "AAAAAAAAAAAAAAAAAAAAAA";
        let table = replication_table(&q, &q.voters[1], false, 2_000).unwrap();
        let want = [
            "NodeId\tDirectoryId           \tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus  \t".to_string(),
            format!("2     \t{zero}\t40          \t0  \t1050              \t1050                 \tLeader  \t"),
            format!("1     \t{zero}\t38          \t2  \t1000              \t900                  \tFollower\t"),
            format!("3     \t{zero}\t40          \t0  \t1040              \t1040                 \tFollower\t"),
            format!("4     \t{zero}\t35          \t5  \t1010              \t-1                   \tObserver\t"),
        ];
        assert_eq!(table, want.join("\n") + "\n");
        let human = replication_table(&q, &q.voters[1], true, 2_000).unwrap();
        assert!(human.contains("\t950 ms ago"), "{human}");
        assert!(human.contains("\t-1 "), "{human}");
        // A timestamp from the future is the clock drifting, as Kafka says.
        let err = replication_table(&q, &q.voters[1], true, 1_020).unwrap_err();
        assert!(
            err.to_string().contains("possible drift in system clock"),
            "{err}"
        );
    }
}
