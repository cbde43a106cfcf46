#!/usr/bin/env python3
"""Turn the stock Cyrus 3.6.1 golden event streams into tests/golden/cases.txt.

Usage: make_cases.py [GOLDEN_DIR]   (default: the folder of this script)

For every golden datagram it writes the calls the Cyrus adapter would make
(see README.md for the line format) and the expected datagram, rendered from
the folder's events.jsonl as stock's jansson rendered it.
"""
import base64, json, re, sys
from collections import OrderedDict
from pathlib import Path

HERE = Path(__file__).resolve().parent
FOLDERS = ["stock-3.6.1-default", "stock-3.6.1-all"]
ENVELOPE = [b"log", b"EVENT", b"", b"", b"", b"0"]  # method class prio user mailbox nopt

TYPES = {n: 1 << i for i, n in enumerate(
    "MessageAppend MessageExpire MessageExpunge MessageNew vnd.cmu.MessageCopy "
    "vnd.cmu.MessageMove QuotaExceed QuotaWithin QuotaChange MessageRead MessageTrash "
    "FlagsSet FlagsClear Login Logout MailboxCreate MailboxDelete MailboxRename "
    "MailboxSubscribe MailboxUnSubscribe AclChange".split())}
TYPES.update(CalendarAlarm=1 << 22, ApplePushService=1 << 23,
             ApplePushServiceDAV=1 << 24, MailboxModseq=1 << 25)

# JSON key of each CMEV_PARAM_* in header order (index = param number).
PARAMS = (
    "timestamp service serverAddress clientAddress oldMailboxID vnd.cmu.oldUidset "
    "mailboxID uri modseq diskQuota diskUsed maxMessages messages vnd.cmu.unseenMessages "
    "uidnext uidset vnd.cmu.midset flagNames pid aclSubject aclRights user messageSize "
    "vnd.cmu.mbtype serverFQDN vnd.cmu.mailboxACL vnd.cmu.davFilename vnd.cmu.davUid "
    "vnd.cmu.envelope vnd.cmu.sessionId bodyStructure vnd.fastmail.clientId "
    "vnd.fastmail.sessionId vnd.fastmail.convExists vnd.fastmail.convUnseen vnd.fastmail.cid "
    "vnd.fastmail.counters vnd.cmu.emailid vnd.cmu.threadid vnd.fastmail.jmapEmail "
    "vnd.fastmail.jmapStates alarmTime alarmRecipients userId calendarId calendarName "
    "calendarColor uid action summary description location timezone start end allDay "
    "attendeeNames attendeeEmails attendeeStatus organizer apsVersion apsAccountId "
    "apsDeviceToken apsSubtopic mailboxes apsTopic apsDeviceToken mailboxUser "
    "mailboxUniqueId expiry messageContent").split()
assert len(PARAMS) == 71
PARAM = {}
for i, k in enumerate(PARAMS):
    PARAM.setdefault(k, i)

# Keys the library fills itself (from config, getpid, the clock, or other calls).
LIBRARY_KEYS = {"event", "timestamp", "service", "serverFQDN", "pid", "vnd.fastmail.clientId",
                "uidset", "vnd.cmu.oldUidset", "vnd.cmu.midset", "flagNames",
                "serverDomain", "serverPort", "clientIP", "clientPort", "aclSubject", "aclRights"}
FLAG_RUN = ["MessageTrash", "MessageRead", "FlagsSet"]  # split order of one FlagsSet


def esc(s):
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def uids(seq):
    for part in seq.split(","):
        a, _, b = part.partition(":")
        yield from range(int(a), int(b or a) + 1)


def parse_steps(path):
    steps = []  # [number, title, [event names]]
    for line in path.read_text().splitlines():
        if line.startswith("# Counts"):
            break
        m = re.match(r"## (\d+)\. (.*)", line)
        if m:
            steps.append([int(m[1]), m[2], []])
        elif line.startswith("- ") and steps:
            steps[-1][2].append(line[2:].split(" ", 1)[0])
    return steps


def parse_conf(path):
    conf = OrderedDict()
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, _, v = line.partition(":")
            conf[k.strip()] = v.strip()
    return conf


def jansson(msg):
    """msg as stock's json_dumps(JSON_COMPACT) wrote it: no spaces, UTF-8, `/` as
    is, control characters as \\uXXXX with uppercase hex."""
    js = json.dumps(msg, separators=(",", ":"), ensure_ascii=False)
    return re.sub(r"(?<!\\)((?:\\\\)*)\\u([0-9a-f]{4})", lambda m: m[1] + "\\u" + m[2].upper(), js).encode()


def load_datagrams(path):
    """events.jsonl (one received datagram per line, its JSON parsed) back into
    the datagrams stock sent: (n, datagram, JSON bytes, parsed JSON)."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        d = json.loads(line, object_pairs_hook=OrderedDict)
        env = [d[k].encode() for k in ("method", "class", "priority", "user", "mailbox")]
        assert env + [str(len(d["options"])).encode()] == ENVELOPE and d["fname"] is None, n
        js = jansson(d["message"])
        out.append((n, b"\0".join(ENVELOPE + [js, b""]), js, d["message"]))
    return out


def same_store(a, b):
    """Two split notifications of one FlagsSet share everything but these."""
    skip = {"event", "timestamp", "flagNames"}
    return {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}


def flag_run(evs, i):
    """Length of the MessageTrash/MessageRead/FlagsSet run split from one FlagsSet at i."""
    j, last = i, -1
    while (j < len(evs) and evs[j][3]["event"] in FLAG_RUN
           and FLAG_RUN.index(evs[j][3]["event"]) > last and same_store(evs[i][3], evs[j][3])):
        last = FLAG_RUN.index(evs[j][3]["event"])
        j += 1
    return j - i


def store_input(group):
    """The one FlagsSet input whose split stock sent as `group`."""
    kinds = [g[3]["event"] for g in group]
    rest = group[-1][3]["flagNames"].split(" ") if kinds[-1] == "FlagsSet" else []
    flags = ["\\Deleted"] * ("MessageTrash" in kinds) + ["\\Seen"] * ("MessageRead" in kinds) + rest
    return (group, "FlagsSet", flags)


class Writer:
    def __init__(self, folder, conf):
        self.folder, self.conf, self.lines = folder, conf, []
        self.client_id, self.service = None, None

    def emit(self, *parts):
        self.lines.append(" ".join(parts[:1]) + (" " + "\t".join(esc(str(p)) for p in parts[1:]) if parts[1:] else ""))

    def state(self, msg):
        """Per-process state the adapter sets before creating the event."""
        if "service" in msg and msg["service"] != self.service:
            self.service = msg["service"]
            self.emit("config", "service", self.service)
        cid = msg.get("vnd.fastmail.clientId", self.client_id or "") or None
        if cid != self.client_id:
            self.client_id = cid
            self.emit("clientid", cid or "-")
        assert msg.get("serverFQDN", self.conf["servername"]) == self.conf["servername"]

    def event(self, msg, typename, flags=None):
        """The calls building one input event from golden notification msg."""
        self.state(msg)
        self.emit("new", TYPES[typename])
        new_or_append = typename in ("MessageNew", "MessageAppend")
        uri = msg["uri"]
        if new_or_append:
            m = re.fullmatch(r"(.*)/;UID=(\d+)", uri)
            uri = m[1]
            self.emit("uid", m[2])
        for u in uids(msg["uidset"]) if "uidset" in msg else ():
            self.emit("uid", u)
        for u in uids(msg["vnd.cmu.oldUidset"]) if "vnd.cmu.oldUidset" in msg else ():
            self.emit("olduid", u)
        for mid in msg.get("vnd.cmu.midset", ()):
            self.emit("msgid", mid)
        if flags is not None:  # a STORE's changed flags
            self.emit("flags", *flags)
        elif "flagNames" in msg:
            if typename in ("FlagsSet", "FlagsClear"):
                self.emit("flags", *msg["flagNames"].split(" "))
            else:
                for f in msg["flagNames"].split(" "):
                    self.emit("flag", f)
        access = "serverDomain" in msg or "clientIP" in msg
        if access:
            addr = lambda ip, port: "-" if ip not in msg else msg[ip] + (f";{msg[port]}" if port in msg else "")
            self.emit("access", addr("serverDomain", "serverPort"), addr("clientIP", "clientPort"),
                      msg.get("user", "-"))
        if "aclSubject" in msg:
            self.emit("acl", msg["aclSubject"], msg.get("aclRights", "-"))
        for k, v in msg.items():
            if k in LIBRARY_KEYS or k == "uri" or (k == "user" and access):
                continue
            if isinstance(v, bool) or k not in PARAM:
                raise SystemExit(f"{self.folder}: no input for key {k!r}")
            if isinstance(v, int):
                self.emit("uint", PARAM[k], v % 2**64)
            elif isinstance(v, str):
                self.emit("str", PARAM[k], v)
            elif isinstance(v, dict):
                self.emit("json", PARAM[k], json.dumps(v, separators=(",", ":"), ensure_ascii=False))
            else:
                raise SystemExit(f"{self.folder}: unsupported value for {k!r}")
        self.emit("uri", uri)

    def expect(self, n, raw, js, msg):
        nuids = len(list(uids(msg["uidset"]))) if "uidset" in msg else 1
        if "modseq" in msg and nuids > 1:
            # stock keeps modseq on 2-message events; the library (RFC 5423) does not
            js, k = re.subn(rb',"modseq":-?\d+', b"", js, count=1)
            assert k == 1
            raw = b"\0".join(ENVELOPE + [js, b""])
            self.lines.append("# fix: modseq dropped (docs/stock-cyrus.md, stock bug 7)")
        self.emit("expect", f"{self.folder}#{n}", base64.b64encode(raw).decode())


def folder_cases(golden, name):
    src = golden / name
    conf = parse_conf(src / "imapd.conf")
    steps = parse_steps(src / "steps.md")
    dgrams = load_datagrams(src / "events.jsonl")
    assert conf["event_notifier"] == "log"
    assert sum(len(s[2]) for s in steps) == len(dgrams), name
    short = name.rsplit("-", 1)[1]
    w = Writer(short, conf)
    w.lines.append(f"# {name}: {len(dgrams)} events")
    w.emit("folder", short)
    for k, v in conf.items():
        if k.startswith("event_") or k == "servername":
            w.emit("config", k, v)
    w.service = next((d[3]["service"] for d in dgrams if "service" in d[3]), "imap")
    w.emit("config", "service", w.service)  # Cyrus's config_ident
    w.emit("clientid", "-")
    pos = 0
    for num, title, names in steps:
        evs = dgrams[pos:pos + len(names)]
        pos += len(names)
        assert [e[3]["event"] for e in evs] == names, (name, num)
        i = 0
        while i < len(evs):
            start, (n, raw, js, msg) = i, evs[i]
            queue = []  # (golden events this input produced, type, flags)
            run = flag_run(evs, i) if msg["event"] in FLAG_RUN else 0
            if run and not (msg["event"] == "MessageRead" and run == 1 and "FETCH" in title):
                queue.append(store_input(evs[i:i + run]))
                i += run
                nxt = evs[i] if i < len(evs) else None
                if nxt and nxt[3]["event"] == "FlagsClear" and nxt[3].get("uidset") == msg.get("uidset"):
                    queue.append(([nxt], "FlagsClear", None))  # same STORE, same queue
                    i += 1
            elif (msg["event"] == "FlagsClear" and i + 1 < len(evs)
                  and "\\seen" in msg["flagNames"].lower().split(" ")
                  and evs[i + 1][3]["event"] in FLAG_RUN and evs[i + 1][3].get("uidset") == msg.get("uidset")):
                # stock sent this FlagsClear first; the adapter queued the FlagsSet before it
                run = flag_run(evs, i + 1)
                queue += [store_input(evs[i + 1:i + 1 + run]), ([evs[i]], "FlagsClear", None)]
                i += 1 + run
            else:  # one event, one notify (MessageRead from FETCH is created directly)
                queue.append(([evs[i]], msg["event"], None))
                i += 1
            sent = evs[start:i]  # what stock sent for these inputs, in its order
            w.lines.append("")
            w.emit("case", f"{short}/step{num}/" + ",".join(str(g[0]) for g in sent))
            for group, typename, flags in queue:
                w.event(group[-1][3] if typename == "FlagsSet" else group[0][3], typename, flags)
            w.emit("notify")
            for g in sent:
                w.expect(*g)
    return w.lines, len(dgrams)


def main():
    golden = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    out = ["# Generated by tests/golden/make_cases.py from stock Cyrus 3.6.1 golden events; do not edit.",
           "# Format: see tests/golden/README.md."]
    total = 0
    for name in FOLDERS:
        lines, n = folder_cases(golden, name)
        out += [""] + lines
        total += n
    (HERE / "cases.txt").write_text("\n".join(out) + "\n", encoding="utf-8")
    print(f"wrote {HERE / 'cases.txt'}: {total} expected events")


if __name__ == "__main__":
    main()
