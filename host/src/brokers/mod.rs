//! Backends behind the host interfaces: the model broker with its built-in
//! deterministic backend, and an in-process memory store. Persistent and
//! AWS backends (embedded store, DynamoDB, SQS/EventBridge, audit) arrive
//! with the brokers issue.

pub mod memory;
pub mod model;
