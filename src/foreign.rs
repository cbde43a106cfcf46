//! A JSON value left in the caller's JSON library (jansson in Cyrus),
//! written by the caller's own dump function when the event is rendered, on
//! whichever thread renders it, and released once, when the last copy goes:
//! the caller's thread pays neither the dump nor the release.

use libc::{c_char, c_int, c_void};

/// Appends `len` bytes to the sink `ctx`; the C type is `cmev_json_write_fn`.
pub type WriteFn = unsafe extern "C" fn(buf: *const c_char, len: usize, ctx: *mut c_void) -> c_int;
/// Writes the JSON text of `obj` through `write`; `cmev_json_dump_fn`.
pub type DumpFn =
    unsafe extern "C" fn(obj: *const c_void, write: Option<WriteFn>, ctx: *mut c_void) -> c_int;
/// Gives back the reference to `obj`; `cmev_json_release_fn`.
pub type ReleaseFn = unsafe extern "C" fn(obj: *mut c_void);

pub struct ForeignJson {
    obj: *mut c_void,
    dump: DumpFn,
    release: ReleaseFn,
}

// SAFETY: the C caller hands the object over with the promise (documented on
// cmev_event_set_json_object) that dump and release may run on any thread
// and that nobody changes the object meanwhile.
unsafe impl Send for ForeignJson {}
unsafe impl Sync for ForeignJson {}

impl ForeignJson {
    /// # Safety
    /// `obj` stays valid until `release(obj)`, which this calls exactly once.
    pub unsafe fn new(obj: *mut c_void, dump: DumpFn, release: ReleaseFn) -> ForeignJson {
        ForeignJson { obj, dump, release }
    }

    /// The object's JSON text as its dump function writes it; `None` if the
    /// dump fails or writes something that is not UTF-8.
    pub fn text(&self) -> Option<String> {
        unsafe extern "C" fn append(buf: *const c_char, len: usize, ctx: *mut c_void) -> c_int {
            if len > 0 && buf.is_null() {
                return -1;
            }
            // SAFETY: ctx is the Vec passed below; buf is valid for len bytes.
            unsafe {
                let out = &mut *ctx.cast::<Vec<u8>>();
                if len > 0 {
                    out.extend_from_slice(std::slice::from_raw_parts(buf.cast::<u8>(), len));
                }
            }
            0
        }
        let mut out: Vec<u8> = Vec::with_capacity(512);
        // SAFETY: obj is live until release; the sink outlives the call.
        let rc = unsafe { (self.dump)(self.obj, Some(append), (&mut out as *mut Vec<u8>).cast()) };
        if rc != 0 {
            return None;
        }
        String::from_utf8(out).ok()
    }
}

impl Drop for ForeignJson {
    fn drop(&mut self) {
        // SAFETY: the single release promised in `new`.
        unsafe { (self.release)(self.obj) };
    }
}

impl std::fmt::Debug for ForeignJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ForeignJson({:p})", self.obj)
    }
}
