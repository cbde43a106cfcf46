//! Ways to reach the receiver at `notifysocket`.

pub mod datagram;
pub mod dlist;
