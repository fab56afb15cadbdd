//! Test support: run the real `hogtrap` binary on a temp store, and real child processes
//! that burn CPU, hold memory, write to disk. Everything started here is stopped on drop.
#![allow(dead_code)]

pub mod recorder;
