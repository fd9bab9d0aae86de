use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use uuid::Uuid;
use vltava_protocol::ResponseError;

use super::str_bytes;
use crate::error::ApiError;
use crate::Broker;

/// First version that names topics by name or id in `topics`.
const TOPIC_STATE_VERSION: i16 = 6;

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let targets: Vec<(Option<TopicName>, Uuid)> = if version >= TOPIC_STATE_VERSION {
        request
            .topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, topic_id) in targets {
        let result = delete(broker, name.as_ref().map(|n| n.0.as_str()), topic_id).await;
        responses.push({
            let response = DeletableTopicResult::default()
                .with_name(name)
                .with_topic_id(topic_id);
            match result {
                Ok((name, id)) => response
                    .with_name(Some(TopicName(str_bytes(name))))
                    .with_topic_id(id),
                Err(e) => response
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message))),
            }
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

async fn delete(
    broker: &Broker,
    name: Option<&str>,
    topic_id: Uuid,
) -> Result<(String, Uuid), ApiError> {
    let name = match (name, topic_id.is_nil()) {
        (Some(name), true) => name.to_string(),
        (None, false) => broker
            .topic_by_id(topic_id)
            .map(|t| t.name.clone())
            .ok_or_else(|| {
                ApiError::new(
                    ResponseError::UnknownTopicId,
                    "This server does not host this topic ID.",
                )
            })?,
        _ => {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                "Exactly one of topic name and topic id must be set",
            ))
        }
    };
    let id = broker.delete_topic(&name).await?;
    Ok((name, id))
}
