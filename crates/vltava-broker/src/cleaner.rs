//! The broker's log cleaner: compacts the partitions of topics whose
//! `cleanup.policy` includes `compact`. The work itself is in
//! `vltava_log::cleaner`; this file picks the logs and the configs.

use std::io;

use tracing::{info, warn};
use vltava_log::cleaner::{Cleaner, Throttler};

use crate::Broker;

impl Broker {
    /// A cleaner sized by `log.cleaner.dedupe.buffer.size` and throttled by
    /// `log.cleaner.io.max.bytes.per.second`. The caller owns it and passes
    /// it to every [`Broker::clean_compacted`] run, as Kafka's one cleaner
    /// thread owns its offset map.
    pub fn log_cleaner(&self) -> Cleaner {
        Cleaner::new(
            self.config.cleaner.dedupe_buffer_bytes,
            Throttler::new(self.cleaner_io_max_bytes_per_second()),
        )
    }

    /// One cleaner run: a compaction pass on every partition of every
    /// compacted topic where one is due (dirty ratio, max compaction lag or
    /// expired tombstones). Blocking file work: call it off the async
    /// workers. Returns the number of partitions cleaned.
    pub fn clean_compacted(&self, cleaner: &mut Cleaner) -> usize {
        // A dynamic log.cleaner.io.max.bytes.per.second applies from the
        // next run.
        cleaner
            .throttler_mut()
            .set_rate(self.cleaner_io_max_bytes_per_second());
        let mut cleaned = 0;
        for topic in self.topics() {
            if !topic.config.is_compacted() {
                continue;
            }
            let config = topic.config.clean_config();
            for partition in topic.partitions.iter().filter(|p| !p.is_offline()) {
                // Passes can take a while: read the clock for each.
                let high_watermark = partition.high_watermark();
                match partition
                    .log()
                    .clean(cleaner, &config, high_watermark, self.now_ms())
                {
                    Ok(None) => {}
                    Ok(Some(s)) => {
                        cleaned += 1;
                        info!(
                            topic = %topic.name,
                            partition = partition.index,
                            first_dirty = s.first_dirty_offset,
                            clean_offset = s.clean_offset,
                            segments_read = s.segments_read,
                            segments_written = s.segments_written,
                            bytes_read = s.bytes_read,
                            bytes_written = s.bytes_written,
                            records_removed = s.records_removed,
                            map_full = s.map_full,
                            "log cleaned"
                        );
                    }
                    Err(vltava_log::LogError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {
                        // Stopped for shutdown.
                        return cleaned;
                    }
                    Err(e) => {
                        warn!(topic = %topic.name, partition = partition.index, error = %e, "log cleaning failed")
                    }
                }
            }
        }
        cleaned
    }
}
