//! SQS's errors: the modern JSON `__type` and the legacy Query code of each, as the
//! awsQueryCompatible SDKs map them (see aws-notes "Protocol and error fidelity").
//! In query-compatible mode every client error is HTTP 400.

use sluice_engine::StoreError;
use sluice_wire::AwsError;

fn sender(json_type: &str, query_code: &str, message: impl Into<String>) -> AwsError {
    AwsError::new(400, json_type, query_code, message)
}

pub fn queue_does_not_exist() -> AwsError {
    sender("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.")
}
pub fn queue_already_exists(attribute: &str) -> AwsError {
    sender(
        "QueueNameExists",
        "QueueAlreadyExists",
        format!("A queue already exists with the same name and a different value for attribute {attribute}"),
    )
}
pub fn queue_deleted_recently() -> AwsError {
    sender(
        "QueueDeletedRecently",
        "AWS.SimpleQueueService.QueueDeletedRecently",
        "You must wait 60 seconds after deleting a queue before you can create another queue with the same name.",
    )
}
pub fn purge_in_progress(queue: &str) -> AwsError {
    sender(
        "PurgeQueueInProgress",
        "AWS.SimpleQueueService.PurgeQueueInProgress",
        format!("Only one PurgeQueue operation on {queue} is allowed every 60 seconds."),
    )
}
pub fn receipt_handle_invalid(handle: &str) -> AwsError {
    sender(
        "ReceiptHandleIsInvalid",
        "ReceiptHandleIsInvalid",
        format!("The input receipt handle \"{handle}\" is not a valid receipt handle."),
    )
}
pub fn receipt_handle_expired(handle: &str) -> AwsError {
    invalid_parameter_value(format!(
        "Value {handle} for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."
    ))
}
pub fn message_not_inflight() -> AwsError {
    sender(
        "MessageNotInflight",
        "AWS.SimpleQueueService.MessageNotInflight",
        "Message does not exist or is not available for visibility timeout change.",
    )
}
pub fn invalid_parameter_value(message: impl Into<String>) -> AwsError {
    sender("InvalidParameterValueException", "InvalidParameterValue", message)
}
pub fn invalid_value_reason(param: &str, value: impl std::fmt::Display, reason: &str) -> AwsError {
    invalid_parameter_value(format!("Value {value} for parameter {param} is invalid. Reason: {reason}"))
}
pub fn missing_parameter(name: &str) -> AwsError {
    sender(
        "MissingRequiredParameterException",
        "MissingParameter",
        format!("The request must contain the parameter {name}."),
    )
}
pub fn invalid_attribute_name(message: impl Into<String>) -> AwsError {
    sender("InvalidAttributeName", "InvalidAttributeName", message)
}
pub fn invalid_attribute_value(message: impl Into<String>) -> AwsError {
    sender("InvalidAttributeValue", "InvalidAttributeValue", message)
}
pub fn too_many_entries(sent: usize) -> AwsError {
    sender(
        "TooManyEntriesInBatchRequest",
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
        format!("Maximum number of entries per request are 10. You have sent {sent}."),
    )
}
pub fn empty_batch(entry_shape: &str) -> AwsError {
    sender(
        "EmptyBatchRequest",
        "AWS.SimpleQueueService.EmptyBatchRequest",
        format!("There should be at least one {entry_shape} in the request."),
    )
}
pub fn batch_ids_not_distinct(id: &str) -> AwsError {
    sender("BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", format!("Id {id} repeated."))
}
pub fn invalid_batch_entry_id() -> AwsError {
    sender(
        "InvalidBatchEntryId",
        "AWS.SimpleQueueService.InvalidBatchEntryId",
        "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.",
    )
}
pub fn batch_request_too_long(sent: usize) -> AwsError {
    sender(
        "BatchRequestTooLong",
        "AWS.SimpleQueueService.BatchRequestTooLong",
        format!("Batch requests cannot be longer than 1048576 bytes. You have sent {sent} bytes."),
    )
}
pub fn invalid_message_contents() -> AwsError {
    sender(
        "InvalidMessageContents",
        "InvalidMessageContents",
        "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
    )
}
pub fn over_limit(message: impl Into<String>) -> AwsError {
    sender("OverLimit", "OverLimit", message)
}
pub fn resource_not_found(message: impl Into<String>) -> AwsError {
    sender("ResourceNotFoundException", "ResourceNotFoundException", message)
}
pub fn unsupported_operation(message: impl Into<String>) -> AwsError {
    sender("UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", message)
}
pub fn invalid_address(message: impl Into<String>) -> AwsError {
    sender("InvalidAddress", "InvalidAddress", message)
}
/// A JSON body that is not JSON, or a member of the wrong type.
pub fn serialization(message: impl Into<String>) -> AwsError {
    sender("SerializationException", "SerializationException", message)
}
pub fn unknown_operation(action: &str, query: bool) -> AwsError {
    if query {
        sender("InvalidAction", "InvalidAction", format!("The action {action} is not valid for this endpoint."))
    } else {
        sender("UnknownOperationException", "UnknownOperationException", "")
    }
}
pub fn internal(e: impl std::fmt::Display) -> AwsError {
    tracing::error!(error = %e, "internal failure");
    AwsError::new(500, "InternalFailure", "InternalFailure", "We encountered an internal error. Please try again.")
}

/// Maps an engine error for the queue named `queue`.
pub fn from_store(e: StoreError, queue: &str, receipt_handle: &str) -> AwsError {
    match e {
        StoreError::QueueDoesNotExist | StoreError::ResourceNotFound => queue_does_not_exist(),
        StoreError::QueueAlreadyExists(attr) => queue_already_exists(&attr),
        StoreError::QueueDeletedRecently => queue_deleted_recently(),
        StoreError::PurgeInProgress => purge_in_progress(queue),
        StoreError::ReceiptHandleInvalid => receipt_handle_invalid(receipt_handle),
        StoreError::ReceiptHandleExpired => receipt_handle_expired(receipt_handle),
        StoreError::MessageNotInflight => message_not_inflight(),
        StoreError::VisibilityLimitExceeded => invalid_parameter_value(
            "Value for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout for the message is beyond the limit [43200 seconds]",
        ),
        StoreError::MoveTask(m) => invalid_parameter_value(m),
        StoreError::MoveTaskNotFound => resource_not_found("Task does not exist."),
        StoreError::Internal(m) | StoreError::Corrupt(m) | StoreError::EncryptionKey(m) => internal(m),
        StoreError::UpdateRefused => internal("update refused"),
    }
}
