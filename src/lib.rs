//! RFC 5423 message store events for Cyrus IMAP 3.6.1, written byte for byte
//! as stock `imap/mboxevent.c` writes them, behind a C ABI (`ffi`) that a
//! thin adapter in Cyrus calls.
//!
//! Data flow: `ffi` → `api` → `event` (+ `rules`, `config`, `seqset`) →
//! `notify` → `json` → `deliver` → `queue` (sender thread) → `frame` →
//! `transport`.

pub mod api;
pub mod config;
pub mod counters;
pub mod deliver;
pub mod event;
pub mod ffi;
pub mod frame;
pub mod json;
pub mod log;
pub mod notify;
pub mod process;
pub mod queue;
pub mod ring;
pub mod rules;
pub mod seqset;
pub mod timestamp;
pub mod transport;
