//! The broker's metrics, in Prometheus' text format, named as Kafka users'
//! dashboards already query them (the JMX exporter's names for Kafka's
//! MBeans, and kafka_exporter's for group lag).
//!
//! Counters are counted where things happen (produce, fetch, the server's
//! request loop, ISR changes); gauges of state (partitions, leaders,
//! under-replicated and offline partitions, log sizes, group lag) are read
//! off the broker when scraped, so they are never stale. Per-partition
//! series are capped ([`PARTITION_SERIES_MAX`] a family): past the cap
//! they are left out and counted in
//! `vltava_metrics_partition_series_omitted`. A deleted topic's series go
//! at the next scrape, as Kafka removes its topic metrics.

use std::collections::{BTreeSet, HashMap};

use kafka_protocol::messages::ApiKey;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Series of one per-partition family (log sizes; group lag) past
/// which the rest are left out of a scrape: 10,000 partitions make 10,000
/// series a family, which Prometheus takes; a broker with more would make
/// every scrape heavy.
pub const PARTITION_SERIES_MAX: usize = 10_000;

/// Request latency buckets, in seconds: 0.5 ms to 30 s (a long-polling
/// fetch waits up to its max wait, 500 ms by default).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The families, registered once per broker (not in a global registry:
/// tests and the simulation run several brokers in one process).
pub struct Metrics {
    registry: Registry,
    partition_series_max: usize,
    /// Held by a scrape: each refills the per-partition families.
    scraping: parking_lot::Mutex<()>,
    messages_in: IntCounterVec,
    bytes_in: IntCounterVec,
    bytes_out: IntCounterVec,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    /// Each API's series in `requests` and `request_seconds`, by API key.
    by_api: parking_lot::RwLock<HashMap<i16, (IntCounter, Histogram)>>,
    connections: IntGaugeVec,
    isr_shrinks: IntCounter,
    isr_expands: IntCounter,
    // Read off the broker at each scrape.
    pub(crate) partition_count: IntGauge,
    pub(crate) leader_count: IntGauge,
    pub(crate) under_replicated: IntGauge,
    pub(crate) active_controller: IntGauge,
    pub(crate) offline_partitions: IntGauge,
    pub(crate) log_size: IntGaugeVec,
    pub(crate) group_lag: IntGaugeVec,
    pub(crate) series_omitted: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(PARTITION_SERIES_MAX)
    }
}

impl Metrics {
    pub fn new(partition_series_max: usize) -> Metrics {
        let registry = Registry::new();
        // Names and labels are constants of this file: a failure here is a
        // typo caught by the first test that builds a broker.
        let counter = |name: &str, help: &str, labels: &[&str]| -> IntCounterVec {
            register(&registry, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| -> IntGaugeVec {
            register(&registry, IntGaugeVec::new(Opts::new(name, help), labels))
        };
        let single =
            |name: &str, help: &str| -> IntGauge { register(&registry, IntGauge::new(name, help)) };
        let total = |name: &str, help: &str| -> IntCounter {
            register(&registry, IntCounter::new(name, help))
        };
        let messages_in = counter(
            "kafka_server_brokertopicmetrics_messagesin_total",
            "Records appended to logs this broker leads, by topic",
            &["topic"],
        );
        let bytes_in = counter(
            "kafka_server_brokertopicmetrics_bytesin_total",
            "Record batch bytes produced to this broker, by topic",
            &["topic"],
        );
        let bytes_out = counter(
            "kafka_server_brokertopicmetrics_bytesout_total",
            "Record batch bytes sent to consumers (not followers), by topic",
            &["topic"],
        );
        let requests = counter(
            "kafka_network_requestmetrics_requests_total",
            "Requests answered, by API",
            &["request"],
        );
        let request_seconds: HistogramVec = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "kafka_network_requestmetrics_totaltime_seconds",
                    "Time from a request's arrival to its response, by API",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["request"],
            ),
        );
        // Kafka's MBean attribute is connection-count, but a gauge named
        // `_count` reads as part of a histogram to Prometheus (promtool
        // says so).
        let connections = gauge(
            "kafka_server_socketservermetrics_connections",
            "Open client connections, by listener",
            &["listener"],
        );
        let isr_shrinks = total(
            "kafka_server_replicamanager_isrshrinks_total",
            "In-sync replica sets this broker shrank as a leader",
        );
        let isr_expands = total(
            "kafka_server_replicamanager_isrexpands_total",
            "In-sync replica sets this broker expanded as a leader",
        );
        let partition_count = single(
            "kafka_server_replicamanager_partitioncount",
            "Partitions with a replica on this broker",
        );
        let leader_count = single(
            "kafka_server_replicamanager_leadercount",
            "Partitions this broker leads",
        );
        let under_replicated = single(
            "kafka_server_replicamanager_underreplicatedpartitions",
            "Partitions this broker leads whose in-sync replicas are fewer than their replicas",
        );
        let active_controller = single(
            "kafka_controller_kafkacontroller_activecontrollercount",
            "1 on the node that leads the metadata quorum, else 0",
        );
        let offline_partitions = single(
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "Partitions without a leader (reported by the active controller)",
        );
        let log_size = gauge(
            "kafka_log_log_size",
            "Bytes of a partition's log on this broker",
            &["topic", "partition"],
        );
        let group_lag = gauge(
            "kafka_consumergroup_lag",
            "High watermark minus the committed offset, for groups this broker coordinates",
            &["consumergroup", "topic", "partition"],
        );
        let series_omitted = single(
            "vltava_metrics_partition_series_omitted",
            "Per-partition series left out of this scrape by the cap",
        );
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            registry
                .register(Box::new(process))
                .expect("registered once");
        }
        Metrics {
            registry,
            partition_series_max,
            scraping: parking_lot::Mutex::new(()),
            messages_in,
            bytes_in,
            bytes_out,
            requests,
            request_seconds,
            by_api: Default::default(),
            connections,
            isr_shrinks,
            isr_expands,
            partition_count,
            leader_count,
            under_replicated,
            active_controller,
            offline_partitions,
            log_size,
            group_lag,
            series_omitted,
        }
    }

    /// A batch of `records` records, `bytes` long, appended to `topic`.
    pub fn produced(&self, topic: &str, records: u64, bytes: u64) {
        self.messages_in.with_label_values(&[topic]).inc_by(records);
        self.bytes_in.with_label_values(&[topic]).inc_by(bytes);
    }

    /// Record bytes sent to a consumer from `topic`.
    pub fn consumed(&self, topic: &str, bytes: u64) {
        self.bytes_out.with_label_values(&[topic]).inc_by(bytes);
    }

    /// A request of API `api` answered after `seconds`. The series of
    /// each API are looked up once and kept: this runs for every request.
    pub fn answered(&self, api: ApiKey, seconds: f64) {
        let key = api as i16;
        let cached = self.by_api.read().get(&key).cloned();
        let (count, latency) = cached.unwrap_or_else(|| {
            let name = format!("{api:?}");
            let handles = (
                self.requests.with_label_values(&[&name]),
                self.request_seconds.with_label_values(&[&name]),
            );
            self.by_api.write().insert(key, handles.clone());
            handles
        });
        count.inc();
        latency.observe(seconds);
    }

    /// A connection opened (+1) or closed (-1) on `listener`.
    pub fn connection(&self, listener: &str, change: i64) {
        self.connections.with_label_values(&[listener]).add(change);
    }

    /// An ISR change this broker made as a leader: one that drops a
    /// member and adds another counts as both.
    pub(crate) fn isr_changed(&self, before: &[i32], after: &[i32]) {
        if before.iter().any(|r| !after.contains(r)) {
            self.isr_shrinks.inc();
        }
        if after.iter().any(|r| !before.contains(r)) {
            self.isr_expands.inc();
        }
    }

    pub(crate) fn scrape_lock(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.scraping.lock()
    }

    /// Drops the topic-labelled series of topics that no longer exist.
    pub(crate) fn forget_deleted_topics(&self, topics: &BTreeSet<&str>) {
        for family in [&self.messages_in, &self.bytes_in, &self.bytes_out] {
            let labelled: Vec<String> = family
                .collect()
                .iter()
                .flat_map(|f| f.get_metric())
                .flat_map(|m| m.get_label())
                .filter(|l| l.name() == "topic")
                .map(|l| l.value().to_string())
                .collect();
            for topic in labelled {
                if !topics.contains(topic.as_str()) {
                    let _ = family.remove_label_values(&[&topic]);
                }
            }
        }
    }

    /// Fills a per-partition family afresh from `series` (labels, value),
    /// up to the cap; returns how many were left out.
    pub(crate) fn fill_partition_series(
        &self,
        family: &IntGaugeVec,
        series: impl Iterator<Item = (Vec<String>, i64)>,
    ) -> usize {
        family.reset();
        let mut omitted = 0;
        let mut room = self.partition_series_max;
        for (labels, value) in series {
            if room == 0 {
                omitted += 1;
                continue;
            }
            room -= 1;
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            family.with_label_values(&labels).set(value);
        }
        omitted
    }

    /// How many series one per-partition family may hold.
    pub(crate) fn partition_series_max(&self) -> usize {
        self.partition_series_max
    }

    /// Every family in Prometheus' text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("the text encoder writes to memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// Registers a collector just made, returning a handle to it.
fn register<C: Collector + Clone + 'static>(registry: &Registry, made: prometheus::Result<C>) -> C {
    let collector = made.expect("a valid metric");
    registry
        .register(Box::new(collector.clone()))
        .expect("each name registered once");
    collector
}

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_and_the_text_names_them_as_dashboards_do() {
        let m = Metrics::default();
        m.produced("orders", 3, 210);
        m.produced("orders", 2, 100);
        m.consumed("orders", 310);
        m.answered(ApiKey::Produce, 0.002);
        m.answered(ApiKey::Produce, 0.02);
        m.connection("PLAINTEXT", 1);
        m.connection("PLAINTEXT", 1);
        m.connection("PLAINTEXT", -1);
        let text = m.encode();
        for line in [
            "kafka_server_brokertopicmetrics_messagesin_total{topic=\"orders\"} 5",
            "kafka_server_brokertopicmetrics_bytesin_total{topic=\"orders\"} 310",
            "kafka_server_brokertopicmetrics_bytesout_total{topic=\"orders\"} 310",
            "kafka_network_requestmetrics_requests_total{request=\"Produce\"} 2",
            "kafka_network_requestmetrics_totaltime_seconds_bucket{request=\"Produce\",le=\"0.0025\"} 1",
            "kafka_network_requestmetrics_totaltime_seconds_bucket{request=\"Produce\",le=\"0.025\"} 2",
            "kafka_network_requestmetrics_totaltime_seconds_bucket{request=\"Produce\",le=\"0.001\"} 0",
            "kafka_server_socketservermetrics_connections{listener=\"PLAINTEXT\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in:\n{text}");
        }
    }

    #[test]
    fn per_partition_series_stop_at_the_cap_and_say_how_many_were_left_out() {
        let m = Metrics::new(3);
        let sizes = (0..5).map(|p| (vec!["t".to_string(), p.to_string()], p * 10));
        assert_eq!(m.fill_partition_series(&m.log_size, sizes), 2);
        let lag = std::iter::once((vec!["g".into(), "t".into(), "0".into()], 7));
        assert_eq!(m.fill_partition_series(&m.group_lag, lag), 0);
        let text = m.encode();
        let sizes: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("kafka_log_log_size{"))
            .collect();
        assert_eq!(
            sizes,
            [
                "kafka_log_log_size{partition=\"0\",topic=\"t\"} 0",
                "kafka_log_log_size{partition=\"1\",topic=\"t\"} 10",
                "kafka_log_log_size{partition=\"2\",topic=\"t\"} 20",
            ]
        );
        assert!(
            text.lines().any(|l| l
                == "kafka_consumergroup_lag{consumergroup=\"g\",partition=\"0\",topic=\"t\"} 7"),
            "{text}"
        );
    }

    #[test]
    fn a_deleted_topics_series_go_and_a_swapped_isr_member_counts_both_ways() {
        let m = Metrics::default();
        m.produced("kept", 1, 10);
        m.produced("gone", 1, 10);
        m.consumed("gone", 10);
        m.forget_deleted_topics(&BTreeSet::from(["kept"]));
        let text = m.encode();
        assert!(text.contains("topic=\"kept\""), "{text}");
        assert!(!text.contains("topic=\"gone\""), "{text}");
        m.isr_changed(&[1, 2, 3], &[1, 2]);
        m.isr_changed(&[1, 2], &[1, 2, 3]);
        m.isr_changed(&[1, 2], &[1, 3]);
        let text = m.encode();
        assert!(
            text.contains("kafka_server_replicamanager_isrshrinks_total 2\n"),
            "{text}"
        );
        assert!(
            text.contains("kafka_server_replicamanager_isrexpands_total 2\n"),
            "{text}"
        );
    }
}
