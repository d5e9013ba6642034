//! Sluice's storage engine: the domain-level `Store` trait and its embedded backend
//! (in-memory indexes over SQLite, one writer thread with group commit).

pub mod ack_route;
pub mod at_rest;
pub mod background;
pub mod clock;
pub mod conformance;
pub mod db;
pub mod embedded;
mod faults;
pub mod firehose;
mod group_digest;
mod le_bytes;
pub mod limits;
pub mod message_log;
mod message_table;
mod paced_write;
pub mod queue_state;
pub mod record_log;
pub mod seqnum;
pub mod store;
pub mod streams;
pub mod topics;
mod write_queue;

pub use clock::{Clock, ManualClock, SystemClock};
pub use embedded::{EmbeddedOptions, EmbeddedStore};
pub use store::*;
