//! The Sluice server: configuration, the HTTP listener and the process around them.

pub mod app;
pub mod auth;
pub mod bench;
pub mod config;
pub mod connections;
pub mod drain;
pub mod hangup;
pub mod head;
pub mod http;
pub mod http1;
pub mod http_client;
pub mod in_flight;
pub mod loops;
pub mod os;
pub mod tls;
