//! Protocol codecs for Sluice: no I/O, only bytes in and bytes out.
//!
//! The botocore service models (stripped copies under `models/`) drive the Query
//! protocol codec, so every service that speaks Query (SQS's legacy protocol, SNS)
//! shares one decoder and one XML encoder.

pub mod cbor;
pub mod civil;
pub mod error;
pub mod eventstream;
pub mod fields;
pub mod json_text;
pub mod md5;
pub mod model;
pub mod query;
pub mod record_base64;
pub mod sigv4;
pub mod validate;
pub mod wide;
pub mod x509;
pub mod xml;

pub use error::{AwsError, ErrorFault};
pub use model::{Model, Shape};
