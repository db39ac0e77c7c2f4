//! Shared by the integration tests: the real `foolock serve` on a free loopback port
//! ([`Server`]), raw HTTP/1.1 requests to it ([`request`], [`http`]), a recording proxy that
//! can hold requests ([`Proxy`]), helpers for the processes the tests start (signals,
//! liveness, polling, exits), and commands under a pseudo-terminal ([`on_a_terminal`]).
//! Each test file that needs them says `mod support;`.

// Each `tests/*.rs` is a crate of its own that uses a different part of this module; without
// these allows, every crate would warn about the parts it does not use.
#![allow(dead_code)]

mod http;
mod process;
mod proxy;
mod server;
mod terminal;

#[allow(unused_imports)]
pub use http::{Reply, http, request};
#[allow(unused_imports)]
pub use process::{
    alive, connected_to, copy_executable, eventually, path_str, read_pid, signal, stderr_of,
    wait_exit, wait_for, write_executable,
};
#[allow(unused_imports)]
pub use proxy::{Proxy, Seen};
#[allow(unused_imports)]
pub use server::{BIN, Server, ServerBuilder, listening_addr, log_time};
#[allow(unused_imports)]
pub use terminal::{finish, on_a_terminal};
