//! AWS limits and defaults the engine applies. Sources: the SQS Developer Guide
//! ("Amazon SQS quotas") and the botocore `sqs/2012-11-05` model documentation.

/// FIFO deduplication interval: 5 minutes, also after the original was deleted.
pub const DEDUP_WINDOW_MS: u64 = 5 * 60 * 1000;
/// ReceiveRequestAttemptId retries are honoured for the same 5 minutes.
pub const RECEIVE_ATTEMPT_WINDOW_MS: u64 = 5 * 60 * 1000;
/// A message's total visibility time since its first receive is capped at 12 hours.
pub const MAX_VISIBILITY_TIMEOUT_S: u64 = 43_200;
/// "You must wait 60 seconds after deleting a queue before you can create another
/// with the same name", and one PurgeQueue per 60 seconds.
pub const QUEUE_COOLDOWN_MS: u64 = 60_000;

pub const DEFAULT_VISIBILITY_TIMEOUT_S: u64 = 30;
pub const DEFAULT_RETENTION_S: u64 = 345_600;
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 1_048_576;

/// FIFO sequence numbers are large decimal strings (AWS example: 18849496460467696128);
/// Sluice adds this base to its global message counter so they have AWS's shape.
pub const SEQUENCE_NUMBER_BASE: u128 = 18_000_000_000_000_000_000;
