//! Everything that reads the host: `/proc`, sysinfo, netlink. Nothing outside `collect`
//! touches those sources.

pub mod net;
