//! Privileged I/O, kept thin: the lab's namespace and veth pair, the
//! AF_PACKET link, the kernel-side server.

pub mod labnet;
pub mod link;
pub mod server;
pub mod sockinfo;
mod sys;
