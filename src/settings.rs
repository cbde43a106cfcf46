//! What the process has set: the configuration (replaced whole on each
//! change, so that an event keeps the one in force when it was made), the
//! client id and the IMAP NOTIFY callback.

use crate::config::{Config, ConfigError};
use crate::log;
use std::sync::{Arc, LazyLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The in-process consumer of IMAP NOTIFY events (newer Cyrus versions).
#[derive(Clone, Copy)]
pub struct Callback {
    pub func: unsafe extern "C" fn(json: *const libc::c_char, len: usize, rock: *mut libc::c_void),
    pub rock: usize,
}

static CONFIG: LazyLock<RwLock<Arc<Config>>> =
    LazyLock::new(|| RwLock::new(Arc::new(Config::default())));
static CLIENT_ID: RwLock<Option<String>> = RwLock::new(None);
static CALLBACK: RwLock<Option<Callback>> = RwLock::new(None);

// std's locks, not parking_lot's: they are held across fork() (see
// `process`), and a parking_lot unlock in the child may need that crate's
// global table of parked threads, whose locks a thread the child lacks may
// have held at the fork.
fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// Every lock of this module, held across fork() (see `process`): dropped
/// on both sides of it.
pub struct ForkHold {
    _config: RwLockWriteGuard<'static, Arc<Config>>,
    _client_id: RwLockWriteGuard<'static, Option<String>>,
    _callback: RwLockWriteGuard<'static, Option<Callback>>,
}

pub fn lock_for_fork() -> ForkHold {
    ForkHold {
        _config: write(&CONFIG),
        _client_id: write(&CLIENT_ID),
        _callback: write(&CALLBACK),
    }
}

pub fn config() -> Arc<Config> {
    read(&CONFIG).clone()
}

/// Set one option; on error it is logged and the option holds its default.
pub fn config_set(option: &str, value: &str) -> Result<(), ConfigError> {
    let mut w = write(&CONFIG);
    let mut c = (**w).clone();
    let r = c.set(option, value);
    *w = Arc::new(c);
    if let Err(e) = &r {
        log::error(&format!("mboxevent: {e}"));
    }
    r
}

pub fn config_reset() {
    *write(&CONFIG) = Arc::new(Config::default());
}

/// Run `f` on the client id ("" when unset), without copying it.
pub fn with_client_id<R>(f: impl FnOnce(&str) -> R) -> R {
    f(read(&CLIENT_ID).as_deref().unwrap_or_default())
}

pub fn set_client_id(id: Option<String>) {
    *write(&CLIENT_ID) = id;
}

pub fn callback() -> Option<Callback> {
    *read(&CALLBACK)
}

pub fn set_callback(cb: Option<Callback>) {
    *write(&CALLBACK) = cb;
}
