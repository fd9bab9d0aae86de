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

/// Every group is coordinated by this (single) broker; the offsets topic is
/// created on first use.
pub fn handle(
    broker: &Broker,
    version: i16,
    client: &ClientInfo,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let address = broker.address_on(broker.node_id(), &client.listener);
    let error = if request.key_type == KEY_TYPE_TRANSACTION {
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
    } else if address.is_none() {
        // Kafka's answer when the coordinator has no endpoint on the
        // client's listener (advertised.listeners leaves it out).
        Some((
            ResponseError::CoordinatorNotAvailable,
            format!(
                "the coordinator advertises no address on listener {}",
                client.listener
            ),
        ))
    } else {
        broker
            .groups()
            .ensure_ready(broker)
            .err()
            .map(|e| (ResponseError::CoordinatorNotAvailable, e.message))
    };
    let coordinator = |key: StrBytes| {
        let c = Coordinator::default().with_key(key);
        match &error {
            Some((e, message)) => c
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(message.clone())))
                .with_node_id(BrokerId(-1))
                .with_port(-1),
            None => {
                let (host, port) = address.clone().unwrap_or_default();
                c.with_node_id(BrokerId(broker.node_id()))
                    .with_host(str_bytes(host))
                    .with_port(i32::from(port))
            }
        }
    };
    if version >= BATCHED_VERSION {
        return FindCoordinatorResponse::default().with_coordinators(
            request
                .coordinator_keys
                .into_iter()
                .map(coordinator)
                .collect(),
        );
    }
    let c = coordinator(request.key);
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(c.error_message)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}
