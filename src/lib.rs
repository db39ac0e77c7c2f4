//! foolock: a lease-lock referee for devices that share a synced folder.
//!
//! - [`engine`]: the pure lock table (rules, tokens, waiters, events, clocks). No I/O.
//! - [`service`]: the engine behind a mutex, with events on a broadcast channel and a timer.
//! - [`api`]: the HTTP API (axum) and its wire types, shared with the CLI client.
//! - [`server`]: binding, serving and shutting down; used by `foolock serve` and the agent.
//! - [`config`]: the TOML settings file.
//! - [`client`]: the CLI client (`foolock lock`, `acquire`, `release`, `status`, `list`).
//! - [`cli`], [`exit`]: command-line flags and exit codes shared by the subcommands.

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod engine;
pub mod exit;
pub mod server;
pub mod service;
