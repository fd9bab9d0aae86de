use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use vltava_protocol::ResponseError;

use super::{str_bytes, ClientInfo};
use crate::Broker;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// What a transactional client is told. TRANSACTIONAL_ID_AUTHORIZATION_FAILED
/// is the one coordinator error every client treats as fatal at once
/// (librdkafka retries any other until its timeout and then reports a
/// retriable timeout), so the user sees this message instead of a hang.
pub(super) const TRANSACTIONS_UNSUPPORTED: &str =
    "Vltava does not support Kafka transactions yet; unset transactional.id (an idempotent producer still writes each record once per partition)";
/// From this version the request carries a batch of keys.
const BATCHED_VERSION: i16 = 4;

/// A group is coordinated by the broker that leads its `__consumer_offsets`
/// partition; the offsets topic is created on first use.
pub async fn handle(
    broker: &Broker,
    version: i16,
    client: &ClientInfo,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let refused = if request.key_type == KEY_TYPE_TRANSACTION {
        broker.warn_once(&client.client_id, "transactions", TRANSACTIONS_UNSUPPORTED);
        Some((
            ResponseError::TransactionalIdAuthorizationFailed,
            TRANSACTIONS_UNSUPPORTED.to_string(),
        ))
    } else if request.key_type != KEY_TYPE_GROUP {
        Some((
            ResponseError::InvalidRequest,
            "only group coordinators exist: share groups are not supported yet".to_string(),
        ))
    } else {
        None
    };
    // The first one creates `__consumer_offsets` (a commit to the quorum).
    let mut found = Vec::new();
    let keys: Vec<StrBytes> = match version >= BATCHED_VERSION {
        true => request.coordinator_keys,
        false => vec![request.key],
    };
    for key in &keys {
        let node = match &refused {
            Some(refused) => Err(refused.clone()),
            None => broker
                .groups()
                .coordinator_of(broker, key.as_str())
                .await
                .map_err(|e| (ResponseError::CoordinatorNotAvailable, e.message)),
        };
        found.push(node);
    }
    let find = |node: Result<i32, (ResponseError, String)>| -> Result<(i32, String, u16), (ResponseError, String)> {
        let node = node?;
        // Kafka's answer when the coordinator has no endpoint on the
        // client's listener (advertised.listeners leaves it out).
        let (host, port) = broker.address_on(node, &client.listener).ok_or_else(|| {
            (
                ResponseError::CoordinatorNotAvailable,
                format!(
                    "the coordinator (broker {node}) advertises no address on listener {}",
                    client.listener
                ),
            )
        })?;
        Ok((node, host, port))
    };
    let coordinator = |(key, node): (StrBytes, Result<i32, (ResponseError, String)>)| {
        let found = find(node);
        let c = Coordinator::default().with_key(key);
        match found {
            Err((e, message)) => c
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(message)))
                .with_node_id(BrokerId(-1))
                .with_port(-1),
            Ok((node, host, port)) => c
                .with_node_id(BrokerId(node))
                .with_host(str_bytes(host))
                .with_port(i32::from(port)),
        }
    };
    let mut answers = keys.into_iter().zip(found).map(coordinator);
    if version >= BATCHED_VERSION {
        return FindCoordinatorResponse::default().with_coordinators(answers.collect());
    }
    let c = answers.next().expect("one key before batching");
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(c.error_message)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}
