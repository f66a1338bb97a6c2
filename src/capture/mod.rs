//! Captures: pcap writing (and, for `inspect`, reading and analysis), pure
//! over `io::Read`/`io::Write`.

pub mod writer;
