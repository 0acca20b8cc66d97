//! The simulated driver the server tests use: the shared harness's [`Server`](harness::Server) (an
//! in-memory file system, a fake data connection and a clock that only moves when a test says so), under
//! the name `Sim`. See `tests/harness/mod.rs`.
#![allow(unused_imports)]

#[path = "../harness/mod.rs"]
mod harness;

pub use harness::{CLIENT, LOCAL, MemoryStore, Node, Server as Sim, Verdict, is_dir};
