//! `vltava`: the broker and the Kafka-style tools (`topics`,
//! `console-producer`, `console-consumer`, `consumer-groups`, `configs`,
//! `broker-api-versions`, `cluster`, `perf`) in one binary. Each tool lives in its
//! own module under `tools/` and takes the flags of its `kafka-*.sh` twin.

mod tools;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vltava_broker::config::parse_properties;
use vltava_broker::{Broker, BrokerConfig, SystemClock};

#[derive(Parser)]
#[command(
    name = "vltava",
    version,
    propagate_version = true,
    about = "An event streaming platform that speaks Kafka"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker: one node, or a cluster's voter (controller.quorum.voters).
    ///
    /// With no flags the broker is one node that is its own controller:
    /// listener 127.0.0.1:9092, data in ./vltava-data, topics auto-created
    /// with one partition. With controller.quorum.voters it is one voter of
    /// a cluster (`vltava dev-cluster` starts one locally). Partitions are
    /// not replicated yet: every topic has a replication factor of one.
    /// Every config key, with Kafka's names: docs/configuration.md.
    Server {
        /// A Kafka-style server.properties file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Set one config, e.g. --override log.dirs=/tmp/data (repeatable;
        /// wins over the file).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Create, list, describe, alter or delete topics (kafka-topics.sh).
    Topics(tools::topics::TopicsArgs),
    /// Produce stdin lines as records (kafka-console-producer.sh).
    ConsoleProducer(tools::console_producer::ConsoleProducerArgs),
    /// Print records to stdout (kafka-console-consumer.sh).
    ConsoleConsumer(tools::console_consumer::ConsoleConsumerArgs),
    /// List, describe, delete groups and reset offsets (kafka-consumer-groups.sh).
    ConsumerGroups(tools::consumer_groups::ConsumerGroupsArgs),
    /// Describe and alter topic and broker configs (kafka-configs.sh).
    Configs(tools::configs::ConfigsArgs),
    /// Print the API versions each broker supports (kafka-broker-api-versions.sh).
    BrokerApiVersions(tools::broker_api_versions::BrokerApiVersionsArgs),
    /// Start a local cluster of N nodes and stop it on Ctrl-C.
    DevCluster(tools::dev_cluster::DevClusterArgs),
    /// Show the cluster id, controller and brokers (kafka-cluster.sh).
    Cluster(tools::cluster::ClusterArgs),
    /// Describe the metadata quorum (kafka-metadata-quorum.sh).
    MetadataQuorum(tools::metadata_quorum::MetadataQuorumArgs),
    /// Print topic partitions' offsets at a time (kafka-get-offsets.sh).
    GetOffsets(tools::get_offsets::GetOffsetsArgs),
    /// Delete records before an offset per partition (kafka-delete-records.sh).
    DeleteRecords(tools::delete_records::DeleteRecordsArgs),
    /// Elect preferred or unclean leaders for partitions (kafka-leader-election.sh).
    LeaderElection(tools::leader_election::LeaderElectionArgs),
    /// Query brokers' log directories (kafka-log-dirs.sh).
    LogDirs(tools::log_dirs::LogDirsArgs),
    /// Move partition replicas between brokers (kafka-reassign-partitions.sh).
    ReassignPartitions(tools::reassign_partitions::ReassignPartitionsArgs),
    /// Print and check log segments, indexes and snapshots (kafka-dump-log.sh).
    DumpLog(tools::dump_log::DumpLogArgs),
    /// Cluster ids and formatting log.dirs ahead of a first start (kafka-storage.sh).
    Storage(tools::storage::StorageArgs),
    /// Produce numbered messages, acknowledgements as JSON (VerifiableProducer).
    VerifiableProducer(tools::verifiable::VerifiableProducerArgs),
    /// Consume in a group, events as JSON (VerifiableConsumer).
    VerifiableConsumer(tools::verifiable::VerifiableConsumerArgs),
    /// Load tests: `perf producer` (kafka-producer-perf-test.sh), `perf
    /// consumer` (kafka-consumer-perf-test.sh), `perf end-to-end` (Kafka's
    /// EndToEndLatency).
    Perf(tools::perf::PerfArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // The broker logs at info; the tools stay quiet unless RUST_LOG asks.
    // openraft narrates every vote and leadership step at info, and logs
    // every failed append to a voter that is down, twice a second: the
    // quorum's own lines say what an operator needs (a new leader, a voter
    // lost and reached again), and RUST_LOG=openraft=info brings openraft's
    // back.
    let default_level = match cli.command {
        Command::Server { .. } => "info,openraft=error,openraft::replication=off",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let raw_args = std::env::args().skip(2).collect::<Vec<_>>().join(" ");
    let tool = match cli.command {
        // One line on failure (a refused config, a port in use), never a
        // backtrace.
        Command::Server { config, overrides } => return exit_on_failure(server(config, overrides)),
        Command::DumpLog(a) => return exit_on_failure(tools::dump_log::run(a)),
        Command::Storage(a) => return exit_on_failure(tools::storage::run(a)),
        command => command,
    };
    let runtime = match tool {
        Command::Perf(_) | Command::VerifiableProducer(_) => tools::perf::runtime(),
        _ => tools::runtime(),
    };
    let result = runtime.and_then(|rt| {
        rt.block_on(async move {
            match tool {
                Command::Server { .. } | Command::DumpLog(_) | Command::Storage(_) => {
                    unreachable!("handled above")
                }
                Command::Topics(a) => tools::topics::run(a).await,
                Command::ConsoleProducer(a) => tools::console_producer::run(a).await,
                Command::ConsoleConsumer(a) => tools::console_consumer::run(a).await,
                Command::ConsumerGroups(a) => tools::consumer_groups::run(a).await,
                Command::Configs(a) => tools::configs::run(a, &raw_args).await,
                Command::BrokerApiVersions(a) => tools::broker_api_versions::run(a).await,
                Command::Cluster(a) => tools::cluster::run(a).await,
                Command::DevCluster(a) => tools::dev_cluster::run(a).await,
                Command::MetadataQuorum(a) => tools::metadata_quorum::run(a).await,
                Command::GetOffsets(a) => tools::get_offsets::run(a).await,
                Command::DeleteRecords(a) => tools::delete_records::run(a).await,
                Command::LeaderElection(a) => tools::leader_election::run(a).await,
                Command::LogDirs(a) => tools::log_dirs::run(a).await,
                Command::ReassignPartitions(a) => tools::reassign_partitions::run(a).await,
                Command::VerifiableProducer(a) => tools::verifiable::producer(a).await,
                Command::VerifiableConsumer(a) => tools::verifiable::consumer(a).await,
                Command::Perf(a) => tools::perf::run(a).await,
            }
        })
    });
    exit_on_failure(result)
}

/// Ends a tool run: a failure is one message on stderr (never a
/// backtrace) and exit status 1.
fn exit_on_failure(result: Result<()>) -> Result<()> {
    if let Err(e) = result {
        match e.downcast_ref::<tools::Failure>() {
            // An empty message: the tool already said what went wrong.
            Some(f) if f.0.is_empty() => {}
            Some(f) => eprintln!("{f}"),
            None => eprintln!("Error: {e:#}"),
        }
        std::process::exit(1);
    }
    Ok(())
}

fn server(file: Option<PathBuf>, overrides: Vec<String>) -> Result<()> {
    let mut pairs = match &file {
        Some(path) => parse_properties(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        ),
        None => Vec::new(),
    };
    for o in &overrides {
        let (k, v) = o
            .split_once('=')
            .with_context(|| format!("--override {o}: expected KEY=VALUE"))?;
        pairs.push((k.to_string(), v.to_string()));
    }
    let (config, unknown) = BrokerConfig::from_pairs(&pairs).map_err(anyhow::Error::msg)?;
    for key in unknown {
        warn!(
            key,
            "The configuration was supplied but isn't a known config"
        );
    }
    raise_open_files_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // The admin server comes up first: /health answers and /ready says
        // why not while the logs are recovered.
        let admin = vltava_server::admin::Admin::new();
        let admin_listeners = vltava_server::admin::bind(&config).await?;
        let registry_listeners = vltava_server::registry::bind(&config).await?;
        let rest_listeners = vltava_server::rest_proxy::bind(&config).await?;
        let admin_shutdown = CancellationToken::new();
        let admin_server = tokio::spawn(vltava_server::admin::serve(
            admin_listeners,
            admin.clone(),
            admin_shutdown.clone(),
        ));
        // The registry answers 503 until the broker has opened, as the
        // console does.
        let registry = vltava_server::registry::Registry::new(admin.clone());
        admin.set_registry(registry.clone());
        let registry_server = tokio::spawn(vltava_server::registry::serve(
            registry_listeners,
            registry.clone(),
            admin_shutdown.clone(),
        ));
        let rest_server = tokio::spawn(vltava_server::rest_proxy::serve(
            rest_listeners,
            vltava_server::rest_proxy::RestProxy::new(admin.clone(), registry.clone()),
            admin_shutdown.clone(),
        ));
        let broker = Arc::new(Broker::open(config, Arc::new(SystemClock)).await?);
        // Server-side schema validation reads ids through the registry's
        // store, whether or not its HTTP API is served.
        broker.set_schema_id_source(registry);
        admin.opened(broker.clone());
        let listeners = vltava_server::bind(&broker).await?;
        admin.listening();
        info!(
            version = env!("CARGO_PKG_VERSION"),
            node_id = broker.node_id(),
            data = %broker.config.data_dir().display(),
            "Vltava broker started"
        );
        eprint!("{}", banner(&broker));
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(
            shutdown.clone(),
            broker.clone(),
            admin.clone(),
        ));
        vltava_server::serve(broker.clone(), listeners, shutdown).await;
        broker.close().await;
        admin_shutdown.cancel();
        let _ = admin_server.await;
        let _ = registry_server.await;
        let _ = rest_server.await;
        info!("Vltava broker stopped");
        Ok(())
    })
}

/// What a person starting the broker wants to know, once: where clients
/// connect, where the admin endpoints are, where the data is, who this
/// node is, and a first command to try.
fn banner(broker: &Broker) -> String {
    let config = &broker.config;
    let bootstrap = config
        .advertised_listeners
        .first()
        .map(|l| format!("{}:{}", l.host, l.port))
        .unwrap_or_default();
    let kafka: Vec<String> = config
        .listeners
        .iter()
        .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
        .collect();
    let admin = match config.admin_listeners.as_slice() {
        [] => "off (admin.listeners is empty)".to_string(),
        addresses => addresses
            .iter()
            .map(|a| format!("http://{a} (console, /metrics, /health, /ready)"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let registry = match config.schema_registry_listeners.as_slice() {
        [] => "off (schema.registry.listeners is empty)".to_string(),
        addresses => addresses
            .iter()
            .map(|a| format!("http://{a}"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let rest = match config.rest_proxy_listeners.as_slice() {
        [] => "off (rest.proxy.listeners is empty)".to_string(),
        addresses => addresses
            .iter()
            .map(|a| format!("http://{a}"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    format!(
        "\nVltava {} is up: node {}, cluster {}\n  Kafka:    {}\n  Admin:    {}\n  Registry: {}\n  REST:     {}\n  Data:     {}\n  Try:      vltava console-producer --bootstrap-server {bootstrap} --topic demo\n\n",
        env!("CARGO_PKG_VERSION"),
        broker.node_id(),
        broker.cluster_id(),
        kafka.join(", "),
        admin,
        registry,
        rest,
        config.data_dir().display(),
    )
}

/// On SIGTERM or SIGINT: a controlled shutdown (the broker fences itself
/// through the controller while it still serves, so clients move on at
/// once), then the listeners stop.
async fn stop_on_signal(
    shutdown: CancellationToken,
    broker: Arc<Broker>,
    admin: Arc<vltava_server::admin::Admin>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers; stop the broker with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = int.recv() => info!("SIGINT: shutting down"),
    }
    admin.stopping();
    broker.shut_down_in_cluster().await;
    shutdown.cancel();
}

/// A broker holds a descriptor per segment file and per connection, so, as
/// the JVM does for Kafka, raise the soft limit on open files to the hard
/// limit. Failure only means the operator's limit stays in force.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => info!(open_files_max = ?limit.maximum, "raised the open-files limit"),
            Err(e) => warn!(error = %e, "could not raise the open-files limit"),
        }
    }
}
