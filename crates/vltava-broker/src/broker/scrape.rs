//! The broker's state as metrics, read when `/metrics` is scraped.

use super::Broker;
use crate::metrics::Metrics;

impl Broker {
    /// Counters the request path and the server add to.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Every metric in Prometheus' text format, the gauges of state read
    /// off the broker now.
    pub fn scrape_metrics(&self) -> String {
        let m = &self.metrics;
        let node = self.node_id();
        let topics = self.topics();
        let (mut hosted, mut leading, mut under_replicated, mut offline) = (0, 0, 0, 0);
        for p in topics.iter().flat_map(|t| t.partitions.iter()) {
            let a = p.assignment();
            if a.leader < 0 {
                offline += 1;
            }
            if !p.is_hosted() {
                continue;
            }
            hosted += 1;
            if p.is_leader() {
                leading += 1;
                if a.isr.len() < a.replicas.len() {
                    under_replicated += 1;
                }
            }
        }
        let controller = self.metadata.leader() == u64::try_from(node).ok();
        m.partition_count.set(hosted);
        m.leader_count.set(leading);
        m.under_replicated.set(under_replicated);
        m.active_controller.set(i64::from(controller));
        // Kafka's active controller alone reports offline partitions.
        m.offline_partitions
            .set(if controller { offline } else { 0 });
        let mut room = m.partition_series_max();
        let sizes = topics.iter().flat_map(|t| {
            t.partitions.iter().filter(|p| p.is_hosted()).map(|p| {
                (
                    vec![t.name.clone(), p.index.to_string()],
                    p.log().size_bytes() as i64,
                )
            })
        });
        let mut omitted = m.fill_partition_series(&m.log_size, sizes, &mut room);
        // Lag as the coordinator sees it: the high watermark of its own
        // replica (a consumer reads up to it) minus the committed offset;
        // a commit ahead of it counts as no lag.
        let lags = self.groups.committed_offsets().into_iter().filter_map(
            |(group, topic, index, committed)| {
                let partition = self.topic(&topic)?.partition(index)?.clone();
                partition.is_hosted().then(|| {
                    let lag = (partition.high_watermark() - committed).max(0);
                    (vec![group, topic, index.to_string()], lag)
                })
            },
        );
        omitted += m.fill_partition_series(&m.group_lag, lags, &mut room);
        m.series_omitted.set(omitted as i64);
        m.encode()
    }
}
