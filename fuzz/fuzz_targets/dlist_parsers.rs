//! The dlist reply parser (what the library reads back from a `dlist:`
//! listener) and the request parser (what cmev-tap reads from Cyrus): never
//! panic on any bytes, decide as documented, and parse_request(frame(m, j))
//! gives back exactly m and j, whole or cut anywhere.
#![no_main]

use arbitrary::Arbitrary;
use cyrus_mboxevent::transport::dlist::{frame, parse_reply, parse_request, DlistError, Request};
use libfuzzer_sys::fuzz_target;
use std::sync::{mpsc, Mutex, OnceLock};

#[derive(Arbitrary, Debug)]
enum Input {
    Reply(Vec<u8>),
    Request {
        bytes: Vec<u8>,
        more: Vec<u8>,
        cut: u16,
    },
    RoundTrip {
        method: String,
        json: String,
        tail: Vec<u8>,
        cut: u16,
    },
}

/// The parser's stack use must not grow with the input: parse on a thread
/// with a small stack, so unbounded recursion (e.g. nested lists) shows up
/// as a crash at fuzzing sizes, not only at 100 kB in cmev-tap. One worker
/// thread, reused (a thread per input would cost more than the parse).
type Parsed = Option<Result<(Request, usize), ()>>;

fn small_stack(bytes: &[u8]) -> Parsed {
    struct Worker {
        to: Mutex<mpsc::Sender<Vec<u8>>>,
        from: Mutex<mpsc::Receiver<Parsed>>,
    }
    static WORKER: OnceLock<Worker> = OnceLock::new();
    let w = WORKER.get_or_init(|| {
        let (to, rx) = mpsc::channel::<Vec<u8>>();
        let (tx, from) = mpsc::channel();
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                for b in rx {
                    tx.send(parse_request(&b)).unwrap();
                }
            })
            .expect("spawn");
        Worker {
            to: Mutex::new(to),
            from: Mutex::new(from),
        }
    });
    w.to.lock().unwrap().send(bytes.to_vec()).unwrap();
    w.from.lock().unwrap().recv().expect("parser thread")
}

fuzz_target!(|input: Input| match input {
    Input::Reply(line) => {
        let name_len = line
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        let well_formed = name_len > 0
            && (line.len() == name_len || line[name_len] == b' ')
            && !line.iter().any(|b| b.is_ascii_control());
        match parse_reply(&line) {
            Ok(()) => assert!(well_formed && &line[..name_len] == b"OK"),
            Err(DlistError::NotOk(name)) => {
                assert!(well_formed && name.as_bytes() == &line[..name_len] && name != "OK")
            }
            Err(DlistError::Garbage) => assert!(!well_formed),
            Err(e) => panic!("parse_reply gave {e:?}"),
        }
    }
    Input::Request { bytes, more, cut } => match small_stack(&bytes) {
        Some(Ok((req, used))) => {
            assert!(used > 0 && used <= bytes.len());
            // Only the bytes it used decide; anything after is the next request.
            let again = parse_request(&bytes[..used]);
            assert_eq!(again, Some(Ok((req, used))));
            let c = usize::from(cut) % used;
            assert_eq!(
                parse_request(&bytes[..c]),
                None,
                "a prefix of a request is incomplete"
            );
        }
        Some(Err(())) => {
            // Invalid stays invalid whatever follows.
            let mut longer = bytes.clone();
            longer.extend_from_slice(&more);
            assert_eq!(parse_request(&longer), Some(Err(())));
        }
        None => {}
    },
    Input::RoundTrip {
        method,
        json,
        tail,
        cut,
    } => {
        let f = frame(&method, &json);
        let want = Request {
            method: method.clone(),
            class: "EVENT".into(),
            message: json.as_bytes().to_vec(),
        };
        assert_eq!(parse_request(&f), Some(Ok((want, f.len()))));
        let c = usize::from(cut) % f.len();
        assert_eq!(parse_request(&f[..c]), None, "cut at {c}");
        let mut longer = f.clone();
        longer.extend_from_slice(&tail);
        match parse_request(&longer) {
            Some(Ok((req, used))) => {
                assert_eq!(used, f.len());
                assert_eq!((req.method, req.message), (method, json.into_bytes()));
            }
            other => panic!("frame followed by bytes: {other:?}"),
        }
    }
});
