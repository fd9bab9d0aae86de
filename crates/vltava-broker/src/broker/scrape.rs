//! The broker's state as metrics, read when `/metrics` is scraped.

use std::collections::BTreeSet;

use super::Broker;
use crate::metrics::Metrics;

impl Broker {
    /// Counters the request path and the server add to.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Every metric in Prometheus' text format, the gauges of state read
    /// off the broker now. One scrape at a time: each refills the
    /// per-partition families from scratch.
    pub fn scrape_metrics(&self) -> String {
        let m = &self.metrics;
        let _one_at_a_time = m.scrape_lock();
        let node = self.node_id();
        // From the committed image: a partition under reassignment counts
        // its joining replicas out of its replication factor, as Kafka
        // does, so a reassignment is not an under-replicated alert.
        let (under_replicated, offline) = self.metadata.with_image(|image| {
            let partitions = image.topics.values().flat_map(|t| t.partitions.iter());
            partitions.fold((0, 0), |(under, offline), p| {
                (
                    under + i64::from(p.leader == node && p.under_replicated()),
                    offline + i64::from(p.leader < 0),
                )
            })
        });
        let topics = self.topics();
        let local = topics.iter().flat_map(|t| t.partitions.iter());
        let hosted = local.clone().filter(|p| p.is_hosted()).count() as i64;
        let leading = local.filter(|p| p.is_hosted() && p.is_leader()).count() as i64;
        // Kafka's active controller alone reports offline partitions.
        let controller = self.metadata.leader() == u64::try_from(node).ok();
        m.partition_count.set(hosted);
        m.leader_count.set(leading);
        m.under_replicated.set(under_replicated);
        m.active_controller.set(i64::from(controller));
        m.offline_partitions
            .set(if controller { offline } else { 0 });
        let names: BTreeSet<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        m.forget_deleted_topics(&names);
        let sizes = topics.iter().flat_map(|t| {
            t.partitions.iter().filter(|p| p.is_hosted()).map(|p| {
                (
                    vec![t.name.clone(), p.index.to_string()],
                    p.log().size_bytes() as i64,
                )
            })
        });
        let mut omitted = m.fill_partition_series(&m.log_size, sizes);
        // Lag as the coordinator sees it: the high watermark of its own
        // replica (a consumer reads up to it) minus the committed offset;
        // a commit ahead of it counts as no lag. Only as many offsets as
        // the cap lets through are copied out of the group state.
        let (committed, more) = self.groups.committed_offsets(m.partition_series_max());
        let lags = committed
            .into_iter()
            .filter_map(|(group, topic, index, committed)| {
                let partition = self.topic(&topic)?.partition(index)?.clone();
                partition.is_hosted().then(|| {
                    let lag = (partition.high_watermark() - committed).max(0);
                    (vec![group, topic, index.to_string()], lag)
                })
            });
        omitted += m.fill_partition_series(&m.group_lag, lags) + more;
        m.series_omitted.set(omitted as i64);
        m.encode()
    }
}
