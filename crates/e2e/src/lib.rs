//! See tests/: end-to-end tests with the AWS SDK for Rust.
