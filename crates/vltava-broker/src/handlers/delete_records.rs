use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use vltava_protocol::ResponseError;

use crate::error::ApiError;
use crate::Broker;

pub fn handle(broker: &Broker, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(t.name.0.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let result = topic
                        .as_ref()
                        .and_then(|topic| topic.partition(p.partition_index))
                        .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition, ""))
                        .and_then(|partition| {
                            super::fetch::check_hosted(partition)?;
                            partition.delete_records_before(p.offset)
                        });
                    let response = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    match result {
                        Ok(low_watermark) => response.with_low_watermark(low_watermark),
                        Err(e) => response.with_error_code(e.code()).with_low_watermark(-1),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
