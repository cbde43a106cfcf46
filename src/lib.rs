//! RFC 5423 message store events for Cyrus IMAP 3.6 and 3.10, written byte
//! for byte as stock `imap/mboxevent.c` writes them, behind a C ABI (`ffi`) that a
//! thin adapter in Cyrus calls.
//!
//! An event is built on the caller's thread (`api`, `event`), checked and
//! split as stock's notify does (`notify`), copied into the process's spool
//! ring (`spool`, `journal`, `record`) and queued (`queue`); the process's
//! sender thread (`sender`) renders it (`render`), frames it (`frame`),
//! sends it to notifyd (`wire`, `transport`) and marks its copy done
//! (`mark`). Senders also send what dead processes left in their rings
//! (`adopt`).
//!
//! # Layers
//!
//! The modules below are declared from the bottom up: each imports only
//! from the modules declared before it, never from one after it (`make
//! lint` checks this, with `tests/layers.py`). So any module can be read
//! knowing only what comes before it.

// Foundations.
pub mod counters;
mod log;
mod process_local;
pub mod mark;
// What an event is: Cyrus's catalogue, which parameters a type carries,
// the options, and the event's contents.
pub mod catalogue;
mod series;
mod rules;
pub mod timestamp;
pub mod config;
mod seqset;
mod foreign;
pub mod body;
pub mod event;
// Writing an event as stock does.
pub mod json;
pub mod render;
pub mod outgoing;
pub mod record;
// Between the caller's thread and the sender.
mod pool;
mod notify;
pub mod frame;
pub mod transport;
mod wire;
mod ring;
pub mod journal;
mod queue;
mod spool;
pub mod adopt;
mod sender;
pub mod deliver;
// The process: its settings, fork and exit, and the operations and C ABI.
mod settings;
mod process;
mod api;
pub mod ffi;
