//! SNS's errors, with the codes and statuses of the botocore model
//! (`error.code`/`httpStatusCode` of each exception shape).

use sluice_engine::StoreError;
use sluice_wire::AwsError;

pub fn invalid_parameter(reason: impl std::fmt::Display) -> AwsError {
    AwsError::new(400, "InvalidParameterException", "InvalidParameter", format!("Invalid parameter: {reason}"))
}
pub fn invalid_parameter_value(reason: impl std::fmt::Display) -> AwsError {
    AwsError::new(
        400,
        "InvalidParameterValueException",
        "ParameterValueInvalid",
        format!("Invalid parameter: {reason}"),
    )
}
pub fn not_found(message: &str) -> AwsError {
    AwsError::new(404, "NotFoundException", "NotFound", message)
}
pub fn topic_not_found() -> AwsError {
    not_found("Topic does not exist")
}
pub fn subscription_not_found() -> AwsError {
    not_found("Subscription does not exist")
}
pub fn resource_not_found() -> AwsError {
    AwsError::new(404, "ResourceNotFoundException", "ResourceNotFound", "Resource does not exist")
}
pub fn empty_batch() -> AwsError {
    AwsError::new(
        400,
        "EmptyBatchRequestException",
        "EmptyBatchRequest",
        "The batch request doesn't contain any entries",
    )
}
pub fn too_many_entries(n: usize) -> AwsError {
    AwsError::new(
        400,
        "TooManyEntriesInBatchRequestException",
        "TooManyEntriesInBatchRequest",
        format!("The batch request contains more entries than permissible ({n} > 10)"),
    )
}
pub fn ids_not_distinct() -> AwsError {
    AwsError::new(
        400,
        "BatchEntryIdsNotDistinctException",
        "BatchEntryIdsNotDistinct",
        "Two or more batch entries in the request have the same Id.",
    )
}
pub fn invalid_batch_entry_id() -> AwsError {
    AwsError::new(
        400,
        "InvalidBatchEntryIdException",
        "InvalidBatchEntryId",
        "The Id of a batch entry in a batch request doesn't abide by the specification.",
    )
}
pub fn batch_too_long() -> AwsError {
    AwsError::new(
        400,
        "BatchRequestTooLongException",
        "BatchRequestTooLong",
        "The length of all the messages put together is more than the limit.",
    )
}
pub fn tag_limit_exceeded() -> AwsError {
    AwsError::new(
        400,
        "TagLimitExceededException",
        "TagLimitExceeded",
        "Could not complete request: tag quota of per resource exceeded",
    )
}
pub fn not_supported(action: &str) -> AwsError {
    AwsError::new(400, "InvalidAction", "InvalidAction", format!("The action {action} is not supported by Sluice yet."))
}
pub fn unknown_action(action: &str) -> AwsError {
    AwsError::new(400, "InvalidAction", "InvalidAction", format!("The action {action} is not valid for this endpoint."))
}
pub fn missing_parameter(name: &str) -> AwsError {
    invalid_parameter(format!("{name} Reason: must be specified"))
}
pub fn internal(e: impl std::fmt::Display) -> AwsError {
    tracing::error!(error = %e, "internal failure");
    AwsError::new(500, "InternalErrorException", "InternalError", "Internal Error")
}
pub fn from_store(e: StoreError) -> AwsError {
    match e {
        StoreError::QueueDoesNotExist => not_found("Endpoint does not exist"),
        other => internal(other),
    }
}
