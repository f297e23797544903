//! Backends behind the host interfaces: models (built-in, Bedrock Converse,
//! OpenAI-compatible HTTP), memory (embedded redb, DynamoDB, in-process) and
//! events (in-process, SQS, EventBridge), and the answers to paused
//! workflows (Step Functions task tokens). `crate::backends` opens the ones
//! a host's settings ask for.

pub mod callbacks;
pub mod events;
pub mod memory;
pub mod model;

use std::future::Future;
use std::pin::Pin;

/// A boxed future that may hold borrows for `'a`: what the backend traits
/// return, so that they stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
