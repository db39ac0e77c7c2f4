//! foolock: a lease-lock referee for devices that share a synced folder.
//!
//! - [`engine`]: the pure lock table (rules, tokens, waiters, events, clocks).
pub mod engine;
