//! Backends behind the host interfaces. Today: the model broker with its
//! built-in deterministic backend. Memory, events and audit backends arrive
//! with the brokers issue.

pub mod model;
