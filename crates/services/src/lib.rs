//! Service semantics: request validation and AWS behaviour, on top of the engine.

pub mod context;
pub mod filter;
pub mod firehose;
pub mod iam;
pub mod kinesis;
pub mod sns;
pub mod sqs;

pub use context::{ContextParts, RequestContext};
