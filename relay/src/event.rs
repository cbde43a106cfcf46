//! What the relay takes from a notification, and what it puts beside an
//! event on the way out: its id, and (only if the operator asks) the id
//! inside the JSON.

use crate::store::NewEvent;
use serde::Deserialize;

/// Why a notification is not relayed.
#[derive(Debug, PartialEq, Eq)]
pub enum NotAnEvent {
    /// Not notifyd's datagram format.
    Malformed,
    /// A notification of another class (Sieve's `notify`, for example):
    /// only class `EVENT` carries RFC 5423 events.
    Class(String),
    /// Class `EVENT` but the message is not JSON with an `event` name.
    NoEventName,
}

impl std::fmt::Display for NotAnEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotAnEvent::Malformed => write!(f, "not a notifyd datagram"),
            NotAnEvent::Class(c) => write!(f, "class {c:?}, not EVENT"),
            NotAnEvent::NoEventName => write!(f, "message is not event JSON with an event name"),
        }
    }
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    event: std::borrow::Cow<'a, str>,
}

/// An event from its class and message, as both transports carry them.
pub fn from_message(class: &[u8], message: &[u8]) -> Result<NewEvent, NotAnEvent> {
    if class != b"EVENT" {
        return Err(NotAnEvent::Class(String::from_utf8_lossy(class).into()));
    }
    let head: Head = serde_json::from_slice(message).map_err(|_| NotAnEvent::NoEventName)?;
    if head.event.is_empty() {
        return Err(NotAnEvent::NoEventName);
    }
    Ok(NewEvent {
        id: None,
        name: head.event.into_owned(),
        json: message.to_vec(),
    })
}

/// notifyd's datagram: method, class, priority, user, mailbox, nopt,
/// options, message, [fname], each NUL-terminated (stock's notify()).
pub fn from_datagram(d: &[u8]) -> Result<NewEvent, NotAnEvent> {
    let mut fields = d.split(|b| *b == 0);
    let mut next = || fields.next().ok_or(NotAnEvent::Malformed);
    let _method = next()?;
    let class = next()?;
    let (_priority, _user, _mailbox) = (next()?, next()?, next()?);
    let nopt: usize = std::str::from_utf8(next()?)
        .ok()
        .and_then(|n| n.parse().ok())
        .ok_or(NotAnEvent::Malformed)?;
    for _ in 0..nopt {
        next()?;
    }
    let message = next()?;
    from_message(class, message)
}

/// The JSON as it goes out: as stored, or with `"key":"id"` first when the
/// operator set `json_id_key`.
pub fn with_id<'a>(json: &'a [u8], key: Option<&str>, id: &str) -> std::borrow::Cow<'a, [u8]> {
    let Some(key) = key else {
        return json.into();
    };
    let Some(rest) = json.strip_prefix(b"{") else {
        return json.into();
    };
    let id = serde_json::to_string(id).expect("a string serialises");
    let sep = if rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}') {
        ""
    } else {
        ","
    };
    let mut out = Vec::with_capacity(json.len() + key.len() + id.len() + 5);
    out.extend_from_slice(format!("{{\"{key}\":{id}{sep}").as_bytes());
    out.extend_from_slice(rest);
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cyrus_mboxevent::frame::datagram;

    #[test]
    fn stock_datagrams() {
        let json = r#"{"event":"MessageNew","uri":"imap://h/INBOX"}"#;
        let e = from_datagram(&datagram("log", json)).unwrap();
        assert_eq!(
            (e.name.as_str(), &e.json[..]),
            ("MessageNew", json.as_bytes())
        );
        let with_opts = b"m\0EVENT\0p\0u\0mb\x002\0o1\0o2\0{\"event\":\"Login\"}\0f\0";
        assert_eq!(from_datagram(with_opts).unwrap().name, "Login");
        assert_eq!(
            from_datagram(b"mailto\0SIEVE\0\0u\0\x000\0hello\0"),
            Err(NotAnEvent::Class("SIEVE".into()))
        );
        assert_eq!(from_datagram(b"log\0EVENT\0"), Err(NotAnEvent::Malformed));
        assert_eq!(
            from_datagram(&datagram("log", "{\"uri\":1}")),
            Err(NotAnEvent::NoEventName)
        );
        assert_eq!(
            from_datagram(&datagram("log", "not json")),
            Err(NotAnEvent::NoEventName)
        );
    }

    #[test]
    fn the_id_key_only_on_request() {
        let j = br#"{"event":"Login"}"#;
        assert_eq!(&with_id(j, None, "h:1:2")[..], j);
        assert_eq!(
            &with_id(j, Some("relayId"), "h:1:2")[..],
            br#"{"relayId":"h:1:2","event":"Login"}"#
        );
        assert_eq!(&with_id(b"{}", Some("k"), "x")[..], br#"{"k":"x"}"#);
        let v: serde_json::Value = serde_json::from_slice(&with_id(j, Some("k"), "a\"b")).unwrap();
        assert_eq!(v["k"], "a\"b");
    }
}
