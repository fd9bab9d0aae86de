use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use vltava_protocol::{api_versions_entries, ResponseError};

pub fn handle(_version: i16, _request: ApiVersionsRequest) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_versions_entries())
}

/// KIP-511: a client that asks with a version we do not know gets a v0
/// response carrying UNSUPPORTED_VERSION and our ranges, so it can retry
/// with a version we do support.
pub fn unsupported_version_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_versions_entries())
}
