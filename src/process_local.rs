//! A value of the process made on first use and never freed, which a forked
//! child forgets rather than shares: a thread of the parent that the child
//! lacks may have been halfway through changing it at the fork. Each one is
//! forgotten in `process`'s fork hook for the child.

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

pub struct ProcessLocal<T>(AtomicPtr<T>);

impl<T: Sync + 'static> ProcessLocal<T> {
    pub const fn new() -> ProcessLocal<T> {
        ProcessLocal(AtomicPtr::new(ptr::null_mut()))
    }

    pub fn get(&self) -> Option<&'static T> {
        // SAFETY: a published value is leaked, never freed.
        unsafe { self.0.load(Ordering::Acquire).as_ref() }
    }

    /// The value, made with `make` if there is none yet; of two threads
    /// making one at once, the first to publish wins.
    pub fn get_or_init(&self, make: impl FnOnce() -> T) -> &'static T {
        if let Some(v) = self.get() {
            return v;
        }
        let fresh = Box::into_raw(Box::new(make()));
        match self
            .0
            .compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: just published; leaked for the life of the process.
            Ok(_) => unsafe { &*fresh },
            Err(winner) => {
                // SAFETY: `fresh` was never shared; `winner` is leaked forever.
                drop(unsafe { Box::from_raw(fresh) });
                unsafe { &*winner }
            }
        }
    }

    /// In a forked child: forget the parent's value (leaked, not freed).
    pub fn forget(&self) {
        self.0.store(ptr::null_mut(), Ordering::Release);
    }
}
