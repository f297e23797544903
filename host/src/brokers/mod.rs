//! Backends behind the host interfaces: models (built-in, Bedrock Converse,
//! OpenAI-compatible HTTP), memory (embedded redb, DynamoDB, in-process) and
//! events (in-process, SQS, EventBridge). `crate::backends` opens the ones a
//! host's settings ask for.

pub mod events;
pub mod memory;
pub mod model;
