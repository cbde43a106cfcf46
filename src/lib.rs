//! RFC 5423 message store events for Cyrus IMAP 3.6.1, written byte for byte
//! as stock `imap/mboxevent.c` writes them, behind a C ABI (`ffi`) that a
//! thin adapter in Cyrus calls.
//!
//! An event is built on the caller's thread (`api`, `event`), checked and
//! split as stock's notify does (`notify`), and queued (`queue`); the
//! process's sender thread (`sender`) renders it (`render`), frames it
//! (`frame`) and sends it to notifyd (`wire`, `transport`).
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
// What an event is: Cyrus's catalogue, which parameters a type carries,
// the options, and the event's contents.
pub mod body;
pub mod catalogue;
pub mod config;
pub mod event;
mod foreign;
mod rules;
mod seqset;
pub mod timestamp;
// Writing an event as stock does.
pub mod json;
pub mod outgoing;
pub mod render;
// Between the caller's thread and the sender.
pub mod deliver;
pub mod frame;
mod notify;
mod pool;
mod queue;
mod ring;
mod sender;
pub mod transport;
mod wire;
// The process: its settings, fork and exit, and the operations and C ABI.
mod api;
pub mod ffi;
mod process;
mod settings;
