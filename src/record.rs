//! A queued notification as bytes that stand on their own: what the spool
//! keeps of each event, so that another process can send it once this one
//! is gone. The event's contents go as they are (parameter values and the
//! text they point into), not rendered: copying them costs the caller far
//! less than writing the JSON, which the sender still does. With them goes
//! what the sender needs of the options: where to send, the notifier, the
//! timestamp format and the limits.
//!
//! Layout, native byte order (the spool never leaves the machine), every
//! part at a multiple of 8: a fixed head (`HEAD` bytes), the socket path and
//! the notifier, the values (`VALUE` bytes each), the list spans (8 bytes
//! each), the text.

use crate::body::{Body, Span, Value};
use crate::catalogue::{EventType, Param};
use crate::config::Config;
use crate::outgoing::Outgoing;
use crate::render::foreign_failed;
use crate::timestamp::TimestampFormat;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

const HEAD: usize = 48;
const VALUE: usize = 16;
const SPAN: usize = 8;

const INT: u8 = 0;
const STR: u8 = 1;
const LIST: u8 = 2;
const JSON: u8 = 3;
const ABSENT: u8 = 4;
const TIME: u8 = 5;
/// A value of the caller's JSON library not yet written (see `spool`).
const PENDING: u8 = 6;

fn round8(n: usize) -> usize {
    (n + 7) & !7
}

/// Write the caller's JSON values into the body's text, so that it holds
/// the whole event: the caller's objects do not outlive its process. A
/// value that cannot be written is left out, as rendering would.
pub fn resolve_foreign(body: &mut Body) {
    let foreign: Vec<(Param, Option<String>)> = body
        .params()
        .filter_map(|(p, v)| match v {
            Value::Foreign(f) => Some((p, f.text())),
            _ => None,
        })
        .collect();
    for (p, text) in foreign {
        match text.filter(|t| crate::json::is_valid(t)) {
            Some(t) => {
                let span = body.push(&t);
                body.set(p, Value::Json(span));
            }
            None => {
                foreign_failed(p);
                body.set(p, Value::Absent);
            }
        }
    }
}

/// Whether the body holds a value of the caller's that `encode` can only
/// mark as pending (see `resolve_foreign`).
pub fn has_foreign(body: &Body) -> bool {
    body.params().any(|(_, v)| matches!(v, Value::Foreign(_)))
}

/// Where a notification goes, as a record carries it: read once per
/// record, for both `encoded_len` and `encode`.
pub struct Target<'a> {
    path: Cow<'a, str>,
    method: &'a str,
}

impl<'a> Target<'a> {
    pub fn of(out: &'a Outgoing) -> Target<'a> {
        Target {
            path: out.cfg.socket_path(),
            method: out.method(),
        }
    }
}

/// Bytes `encode` writes for `out`.
pub fn encoded_len(out: &Outgoing, to: &Target) -> usize {
    HEAD + round8(to.path.len() + to.method.len())
        + VALUE * out.body.filled_mask().count_ones() as usize
        + SPAN * out.body.list.len()
        + round8(out.body.text.len())
}

/// Write `out`, the process's `seq`th spooled event, into `dst`, exactly
/// `encoded_len(out, to)` bytes.
pub fn encode(out: &Outgoing, to: &Target, seq: u64, dst: &mut [u8]) {
    let cfg = &out.cfg;
    let (path, method) = (&to.path, to.method);
    let body = &out.body;
    let nvalues = body.filled_mask().count_ones() as usize;
    let mut w = Writer { dst, at: 0 };
    w.u32(out.kind as u32);
    w.u32(out.made_ms);
    w.u64(seq);
    w.u32(cfg.timestamp_format as u32);
    w.u32(cfg.max_datagram as u32);
    w.u32(millis(cfg.max_age));
    w.u32(millis(cfg.dlist_timeout));
    w.u16(path.len() as u16);
    w.u16(method.len() as u16);
    w.u16(nvalues as u16);
    w.u16(body.list.len() as u16);
    w.u32(body.text.len() as u32);
    w.u32(0);
    w.bytes(path.as_bytes());
    w.bytes(method.as_bytes());
    w.align();
    for (p, v) in body.params() {
        let (tag, a, b) = match v {
            Value::Int(n) => (INT, 0, *n),
            Value::Str(s) => (STR, s.start as u32, s.end as u64),
            Value::List(s) => (LIST, s.start as u32, s.end as u64),
            Value::Json(s) => (JSON, s.start as u32, s.end as u64),
            Value::Time(t) => {
                let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
                (TIME, d.subsec_nanos(), d.as_secs())
            }
            Value::Absent => (ABSENT, 0, 0),
            Value::Foreign(_) => (PENDING, 0, 0),
        };
        w.u32(p as u32 | u32::from(tag) << 8);
        w.u32(a);
        w.u64(b);
    }
    for s in &body.list {
        w.u32(s.start as u32);
        w.u32(s.end as u32);
    }
    w.bytes(body.text.as_bytes());
    w.align();
    debug_assert_eq!(w.at, w.dst.len());
}

fn millis(d: Duration) -> u32 {
    d.as_millis().min(u32::MAX.into()) as u32
}

/// Where and how a notification is sent: the part of the options a record
/// carries, compared to share one `Config` between a run of records.
#[derive(Debug, PartialEq, Eq)]
struct Route<'a> {
    path: &'a str,
    method: &'a str,
    words: [u32; 4],
}

impl Route<'_> {
    fn config(&self) -> Config {
        let [ts, max_datagram, max_age, dlist_timeout] = self.words;
        let mut cfg = Config::default();
        cfg.notifier = Some(self.method.to_owned());
        cfg.notifysocket = Some(self.path.to_owned());
        cfg.max_datagram = max_datagram as usize;
        cfg.max_age = Duration::from_millis(max_age.into());
        cfg.dlist_timeout = Duration::from_millis(dlist_timeout.into());
        if ts == TimestampFormat::Epoch as u32 {
            cfg.timestamp_format = TimestampFormat::Epoch;
        }
        cfg
    }
}

/// A record that is not one this library wrote.
#[derive(Debug, PartialEq, Eq)]
pub struct Corrupt;

/// Reads records back, sharing one `Config` between records of one route.
#[derive(Default)]
pub struct Decoder {
    last: Option<(Vec<u8>, Arc<Config>)>,
}

impl Decoder {
    /// The notification in `src`.
    pub fn decode(&mut self, src: &[u8]) -> Result<Decoded, Corrupt> {
        let mut r = Reader { src, at: 0 };
        let kind = EventType::from_bits(r.u32()?).ok_or(Corrupt)?;
        let made_ms = r.u32()?;
        let seq = r.u64()?;
        let words = [r.u32()?, r.u32()?, r.u32()?, r.u32()?];
        let (plen, mlen) = (r.u16()? as usize, r.u16()? as usize);
        let (nvalues, nlist) = (r.u16()? as usize, r.u16()? as usize);
        let tlen = r.u32()? as usize;
        r.u32()?;
        let route_bytes = r.take(plen + mlen)?;
        let path = std::str::from_utf8(&route_bytes[..plen]).map_err(|_| Corrupt)?;
        let method = std::str::from_utf8(&route_bytes[plen..]).map_err(|_| Corrupt)?;
        r.align()?;
        let route = Route {
            path,
            method,
            words,
        };
        let cfg = match &self.last {
            Some((bytes, cfg)) if bytes[..] == route_key(&route)[..] => Arc::clone(cfg),
            _ => {
                let cfg = Arc::new(route.config());
                self.last = Some((route_key(&route), Arc::clone(&cfg)));
                cfg
            }
        };
        let values_at = r.at;
        r.take(VALUE * nvalues)?;
        let mut body = Box::<Body>::default();
        for _ in 0..nlist {
            let s = Span {
                start: r.u32()? as usize,
                end: r.u32()? as usize,
            };
            body.list.push(s);
        }
        body.text = std::str::from_utf8(r.take(tlen)?)
            .map_err(|_| Corrupt)?
            .to_owned();
        r.align()?;
        if r.at != src.len() {
            return Err(Corrupt);
        }
        if !body.list.iter().all(|s| span_ok(&body.text, s)) {
            return Err(Corrupt);
        }
        let mut v = Reader { src, at: values_at };
        let mut pending = Vec::new();
        for _ in 0..nvalues {
            let head = v.u32()?;
            let a = v.u32()?;
            let b = v.u64()?;
            let p = Param::from_index(head & 0xff).ok_or(Corrupt)?;
            let span = Span {
                start: a as usize,
                end: b.min(usize::MAX as u64) as usize,
            };
            let value = match (head >> 8) as u8 {
                INT => Value::Int(b),
                STR if span_ok(&body.text, &span) => Value::Str(span),
                JSON if span_ok(&body.text, &span) => Value::Json(span),
                LIST if span.start <= span.end && span.end <= body.list.len() => Value::List(span),
                ABSENT => Value::Absent,
                PENDING => {
                    pending.push(p);
                    Value::Absent
                }
                TIME if a < 1_000_000_000 => Value::Time(UNIX_EPOCH + Duration::new(b, a)),
                _ => return Err(Corrupt),
            };
            body.set(p, value);
        }
        Ok(Decoded {
            kind,
            made_ms,
            seq,
            body,
            cfg,
            pending,
        })
    }
}

/// A record read back.
pub struct Decoded {
    pub kind: EventType,
    /// When it was made, on the writing process's millisecond clock.
    pub made_ms: u32,
    pub seq: u64,
    pub body: Box<Body>,
    pub cfg: Arc<Config>,
    /// Parameters left out: the caller's JSON values its process had not
    /// yet written when it died.
    pub pending: Vec<Param>,
}

/// A span of whole characters of `text`.
fn span_ok(text: &str, s: &Span) -> bool {
    s.start <= s.end && text.is_char_boundary(s.start) && text.is_char_boundary(s.end)
}

fn route_key(r: &Route) -> Vec<u8> {
    let mut k = Vec::with_capacity(r.path.len() + r.method.len() + 17);
    k.extend_from_slice(r.path.as_bytes());
    k.push(0);
    k.extend_from_slice(r.method.as_bytes());
    for w in r.words {
        k.extend_from_slice(&w.to_ne_bytes());
    }
    k
}

struct Writer<'a> {
    dst: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) {
        self.dst[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
    }
    fn u16(&mut self, n: u16) {
        self.bytes(&n.to_ne_bytes());
    }
    fn u32(&mut self, n: u32) {
        self.bytes(&n.to_ne_bytes());
    }
    fn u64(&mut self, n: u64) {
        self.bytes(&n.to_ne_bytes());
    }
    fn align(&mut self) {
        let end = round8(self.at);
        self.dst[self.at..end].fill(0);
        self.at = end;
    }
}

struct Reader<'a> {
    src: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Corrupt> {
        let end = self.at.checked_add(n).ok_or(Corrupt)?;
        let b = self.src.get(self.at..end).ok_or(Corrupt)?;
        self.at = end;
        Ok(b)
    }
    fn u16(&mut self) -> Result<u16, Corrupt> {
        Ok(u16::from_ne_bytes(
            self.take(2)?.try_into().map_err(|_| Corrupt)?,
        ))
    }
    fn u32(&mut self) -> Result<u32, Corrupt> {
        Ok(u32::from_ne_bytes(
            self.take(4)?.try_into().map_err(|_| Corrupt)?,
        ))
    }
    fn u64(&mut self) -> Result<u64, Corrupt> {
        Ok(u64::from_ne_bytes(
            self.take(8)?.try_into().map_err(|_| Corrupt)?,
        ))
    }
    fn align(&mut self) -> Result<(), Corrupt> {
        let end = round8(self.at);
        self.take(end - self.at).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::render;

    fn sample(cfg: &Arc<Config>) -> Outgoing {
        let mut body = Box::<Body>::default();
        body.set_str(Param::Uri, "imap://h/user/\u{e9}l\u{e8}ve");
        body.set(Param::Pid, Value::Int(42));
        body.set(
            Param::Timestamp,
            Value::Time(UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789)),
        );
        let a = body.push("\\Seen");
        let b = body.push("$X");
        body.list.extend([a, b]);
        body.set(Param::FlagNames, Value::List(Span { start: 0, end: 2 }));
        let j = body.push("{ \"a\" : [1, 2] }");
        body.set(Param::BodyStructure, Value::Json(j));
        body.set(Param::AclRights, Value::Absent);
        Outgoing::new(EventType::FlagsSet, body, Arc::clone(cfg))
    }

    #[test]
    fn a_record_renders_as_the_event_did() {
        let mut cfg = Config::default();
        cfg.set("event_notifier", "log").unwrap();
        cfg.set("notifysocket", "dlist:/run/notify").unwrap();
        cfg.set("event_timestamp_format", "epoch").unwrap();
        cfg.set("event_queue_max_age", "7").unwrap();
        let cfg = Arc::new(cfg);
        let out = sample(&cfg);
        let to = Target::of(&out);
        let mut buf = vec![0xAA; encoded_len(&out, &to)];
        encode(&out, &to, 77, &mut buf);
        let mut d = Decoder::default();
        let Decoded {
            kind,
            made_ms,
            seq,
            body,
            cfg: got_cfg,
            pending,
        } = d.decode(&buf).unwrap();
        assert_eq!((kind, made_ms, seq), (out.kind, out.made_ms, 77));
        assert!(pending.is_empty());
        let back = Outgoing::new(kind, body, Arc::clone(&got_cfg));
        assert_eq!(back.render().json, out.render().json);
        assert_eq!(
            render(kind, &back.body, got_cfg.timestamp_format).json,
            out.render().json
        );
        assert_eq!(got_cfg.target(), cfg.target());
        assert_eq!(back.method(), "log");
        assert_eq!(got_cfg.max_age, Duration::from_secs(7));
        // The next record of the same route shares its options.
        let again = d.decode(&buf).unwrap();
        assert!(Arc::ptr_eq(&again.cfg, &got_cfg));
    }

    #[test]
    fn a_callers_json_value_is_pending_until_resolved() {
        use crate::foreign::{ForeignJson, WriteFn};
        use libc::{c_int, c_void};
        unsafe extern "C" fn dump(_: *const c_void, w: Option<WriteFn>, ctx: *mut c_void) -> c_int {
            let text = b"{ \"id\" : \"M1\" }";
            unsafe { w.unwrap()(text.as_ptr().cast(), text.len(), ctx) }
        }
        unsafe extern "C" fn release(_: *mut c_void) {}
        let cfg = Arc::new(Config::default());
        let mut out = sample(&cfg);
        // SAFETY: a dummy object that dump and release never dereference.
        let f = unsafe {
            ForeignJson::new(
                std::ptr::NonNull::<u8>::dangling().as_ptr().cast(),
                dump,
                release,
            )
        };
        out.body.set(Param::JmapEmail, Value::Foreign(Arc::new(f)));
        let mut d = Decoder::default();
        let to = Target::of(&out);
        let mut buf = vec![0; encoded_len(&out, &to)];
        encode(&out, &to, 1, &mut buf);
        let r = d.decode(&buf).unwrap();
        assert_eq!(r.pending, vec![Param::JmapEmail]);
        assert!(!render(r.kind, &r.body, r.cfg.timestamp_format)
            .json
            .contains("jmapEmail"));
        assert!(has_foreign(&out.body));
        resolve_foreign(&mut out.body);
        assert!(!has_foreign(&out.body));
        let to = Target::of(&out);
        let mut buf = vec![0; encoded_len(&out, &to)];
        encode(&out, &to, 1, &mut buf);
        let r = d.decode(&buf).unwrap();
        assert!(r.pending.is_empty());
        let json = render(r.kind, &r.body, r.cfg.timestamp_format).json;
        assert!(
            json.contains(r#""vnd.fastmail.jmapEmail":{"id":"M1"}"#),
            "{json}"
        );
        assert_eq!(json, out.render().json);
    }

    #[test]
    fn damaged_records_are_refused_not_trusted() {
        let cfg = Arc::new(Config::default());
        let out = sample(&cfg);
        let to = Target::of(&out);
        let mut buf = vec![0; encoded_len(&out, &to)];
        encode(&out, &to, 1, &mut buf);
        let mut d = Decoder::default();
        assert_eq!(d.decode(&buf[..buf.len() - 8]).err(), Some(Corrupt));
        let mut bad = buf.clone();
        bad[0] = 0xFF; // no such event type
        bad[1] = 0xFF;
        assert!(d.decode(&bad).is_err());
        // Every single-byte change either decodes to something renderable
        // or is refused; none panics.
        for i in 0..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0x5A;
            if let Ok(r) = d.decode(&b) {
                let _ = render(r.kind, &r.body, r.cfg.timestamp_format);
            }
        }
    }
}
