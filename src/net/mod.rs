//! The privileged edge and the kernel's view of sockets: everything here
//! talks to the operating system (sockets, netlink, namespaces). The pure
//! layers never import from here.

pub mod labnet;
pub mod link;
pub mod outfile;
pub mod sockinfo;
pub(crate) mod sys;
pub mod tap;
pub mod userns;
