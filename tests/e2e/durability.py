#!/usr/bin/env python3
"""Durability of queued events when Cyrus processes die, under both golden profiles.

    durability.py [--prefix build/cyrus/patched] [--series 3.6|3.10|3.12] [--profiles default,all]
                  [--only lmtp,imap,term] [--conf 'OPTION: VALUE' ...]

Each check runs in a fresh sandbox (cyrus-patch/run-sandbox.sh) of the profile
tests/golden/stock-3.6.1-<profile> (--series 3.10: stock-3.10.1-<profile>, 3.12:
stock-3.12.4-<profile>, the same imapd.conf; the 3.10 and 3.12 builds also run idled, so
every event is handed to it too; --prefix defaults to the series' patched build) as it is
(event_spool_dir and event_spool_size at their defaults), on /dev/shm unless SANDBOX_BASE says otherwise: on a tmpfs lmtpd's fsyncs cost
nothing, so its events follow each other closer than the sender's 10 ms nap, as on a busy
server (on a disk, the sender is idle between deliveries and sends each at once). What is
tested is the death of a process, not of the machine. The process serving a connection is
found by its socket: the child of the sandbox's master that holds the server end of ours
(UNIX: the peer's inode from sock_diag, as `ss -x` shows it; TCP: /proc/net/tcp).

  lmtp   300 LMTP deliveries to alice, 10 per connection; right after every 10th `250` the
         lmtpd serving the connection gets SIGKILL, and a new connection (a new lmtpd) goes
         on. Then one more delivery on a new connection, which is not killed (its sender,
         starting, adopts the rings of the dead ones). Every acknowledged delivery must
         have its MessageNew (matched by UID, found from its Message-ID): 0 lost.
         Duplicates only from killed lmtpds, at most one batch (64) per killed lmtpd, and
         each process's events in order.
  imap   30 times: login, UID STORE 1 +FLAGS / -FLAGS (\\Flagged) in turn (each changes
         the flag), SIGKILL to the imapd as soon as the tagged OK arrives, reconnect; then
         one more STORE by an imapd left alive. Every acknowledged STORE must have its
         event, matched by the imapd's pid: FlagsSet / FlagsClear, or MailboxModseq where
         the profile's event_groups have no `flags` (default: "message mailbox"). 0 lost.
  term   the listener stopped (tap-stop), 20 deliveries, SIGTERM to their lmtpd: it must
         exit within about one event_flush_timeout (<= 1.5 times it; a flush done twice
         takes 2 times) and log exactly one "still queued" line; the listener is started
         5 s after the signal, one more delivery on a new connection (a new lmtpd): all
         20 + 1 MessageNew must arrive.

Events are awaited up to 30 s (polling S/events.jsonl), but not longer than 15 s after the
last event that arrived (processes that have sent events look for the rings of dead ones
at least every 10 s). A killed process is waited for until master has reaped it, so that
the next one finds it gone.

Prints one `PASS name: ...` / `FAIL name: ...` (or `SKIP`) line per check, with what it
measured (lost, duplicates, timings), and a last line `durability: N passed, M failed`;
exit status 1 if anything failed. E2E_LOGS=DIR keeps each sandbox's events, syslog and
transcript in DIR/durability-<profile>-<check>/; E2E_KEEP=1 keeps the sandboxes.
"""
import argparse
import collections
import imaplib
import json
import os
import re
import signal
import smtplib
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, HERE)
from e2elib import (SERIES as CYRUS_SERIES, Box, Session, build_prefix, conf_value, golden_dir,  # noqa: E402
                    message, series_name)

if os.path.isdir('/dev/shm') and os.access('/dev/shm', os.W_OK):
    os.environ.setdefault('SANDBOX_BASE', '/dev/shm')
FROM = 'rig-sender@example.org'
WAIT_MAX = 30.0       # s, longest wait for the events
WAIT_QUIET = 15.0     # s without a new event after which nothing more is expected
BATCH = 64            # events the sender takes at once: duplicates allowed per killed process
ALICE_INBOX = re.compile(r'^imap://[^/]+/user/alice;UIDVALIDITY=\d+(?:/;UID=(\d+))?$')

RESULTS = []


def report(ok, name, detail):
    tag = {True: 'PASS', False: 'FAIL', None: 'SKIP'}[ok]
    RESULTS.append(ok)
    print(f"{tag} {name}: {detail}", flush=True)
    return ok


# ------------------------------------------------------------------------ processes
def proc_stat(pid):
    """(comm, state, ppid) of a process, None once it is gone."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            s = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = s[s.rindex(')') + 2:].split()
    return s[s.index('(') + 1:s.rindex(')')], rest[0], int(rest[1])


def exited(pid):
    st = proc_stat(pid)
    return st is None or st[1] in 'ZXx'


def master_pid(S):
    pid = int(open(os.path.join(S, 'rig', 'master.pid')).read())
    st = proc_stat(pid)
    if not st or st[0] != 'master':
        raise RuntimeError(f"rig/master.pid {pid} is not a running master ({st})")
    return pid


def children(ppid, comm):
    out = []
    for d in os.listdir('/proc'):
        if d.isdigit():
            st = proc_stat(int(d))
            if st and st[2] == ppid and st[0] == comm and st[1] not in 'ZXx':
                out.append(int(d))
    return out


def socket_inodes(pid):
    inodes = set()
    try:
        fds = os.listdir(f'/proc/{pid}/fd')
    except (FileNotFoundError, ProcessLookupError):
        return inodes
    for fd in fds:
        try:
            m = re.match(r'socket:\[(\d+)\]$', os.readlink(f'/proc/{pid}/fd/{fd}'))
        except OSError:
            continue
        if m:
            inodes.add(int(m.group(1)))
    return inodes


def unix_peer_inode(sock):
    """Inode of the other end of a connected UNIX socket (NETLINK_SOCK_DIAG, UNIX_DIAG_PEER:
    what `ss -xp` shows)."""
    ino = os.fstat(sock.fileno()).st_ino
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 4)   # NETLINK_SOCK_DIAG
    try:
        # struct unix_diag_req: family, protocol, pad, states, ino, show (UDIAG_SHOW_PEER), cookie
        req = struct.pack('=BBHIIIII', socket.AF_UNIX, 0, 0, 0xffffffff, ino, 0x4, 0xffffffff, 0xffffffff)
        # struct nlmsghdr: len, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, seq, pid
        nl.send(struct.pack('=IHHII', 16 + len(req), 20, 0x1, 1, 0) + req)
        data = nl.recv(65536)
    finally:
        nl.close()
    length, typ = struct.unpack_from('=IH', data)
    if typ == 2:   # NLMSG_ERROR
        err = -struct.unpack_from('=i', data, 16)[0]
        raise OSError(err, f"sock_diag: {os.strerror(err)}")
    if struct.unpack_from('=I', data, 20)[0] != ino:
        raise RuntimeError("sock_diag answered about another socket")
    off = 16 + 16    # nlmsghdr, struct unix_diag_msg; then the attributes
    while off + 4 <= length:
        alen, atype = struct.unpack_from('=HH', data, off)
        if alen < 4:
            break
        if atype == 2:   # UNIX_DIAG_PEER
            return struct.unpack_from('=I', data, off + 4)[0]
        off += (alen + 3) & ~3
    raise RuntimeError(f"socket {ino} has no peer")


def tcp_peer_inode(sock):
    """Inode of the server end of our loopback TCP connection, from /proc/net/tcp."""
    def hexaddr(host, port):
        return '%08X:%04X' % (struct.unpack('<I', socket.inet_aton(host))[0], port)
    ours, theirs = hexaddr(*sock.getsockname()), hexaddr(*sock.getpeername())
    with open('/proc/net/tcp') as f:
        for line in f.read().splitlines()[1:]:
            t = line.split()
            if t[1] == theirs and t[2] == ours:
                return int(t[9])
    raise RuntimeError(f"no server end of {ours} -> {theirs} in /proc/net/tcp")


def serving(master, comm, inode):
    """The child `comm` of master that holds socket `inode` (the server end of ours)."""
    for _ in range(100):   # it has answered, so it has accepted; allow for a slow /proc
        hits = [p for p in children(master, comm) if inode in socket_inodes(p)]
        if len(hits) > 1:
            raise RuntimeError(f"{comm} {hits} all hold socket {inode}")
        if hits:
            return hits[0]
        time.sleep(0.01)
    raise RuntimeError(f"no {comm} child of master {master} holds socket {inode}")


def kill(pid, sig, master, comm):
    st = proc_stat(pid)
    if not st or st[0] != comm or st[2] != master:
        raise RuntimeError(f"{pid} is no longer master's {comm} ({st}): not signalled")
    os.kill(pid, sig)


def wait_exit(pid, timeout, reaped=False):
    """Seconds until pid has exited (a zombie counts, unless reaped: until master has
    reaped it), None after timeout."""
    t0 = time.monotonic()
    while not (proc_stat(pid) is None if reaped else exited(pid)):
        if time.monotonic() - t0 > timeout:
            return None
        time.sleep(0.002)
    return time.monotonic() - t0


# ------------------------------------------------------------------------ events
class Events:
    """S/events.jsonl read as it grows; the event objects of complete lines."""

    def __init__(self, sb):
        self.path, self.items, self.off = sb.events, [], 0
        self.grew = time.monotonic()

    def poll(self):
        with open(self.path, 'rb') as f:
            f.seek(self.off)
            data = f.read()
        end = data.rfind(b'\n') + 1
        for line in data[:end].splitlines():
            try:
                m = json.loads(line)['message']
            except (ValueError, KeyError, TypeError):
                m = None
            self.items.append(m if isinstance(m, dict) else {'event': None, 'raw': line[:200]})
        if end:
            self.off += end
            self.grew = time.monotonic()
        return self.items

    def wait(self, done, since, settle=1.0):
        """Poll until done(items) holds, then until the file has been quiet for `settle` s
        (late duplicates); or until WAIT_MAX s after `since` (a time.monotonic()); or
        WAIT_QUIET s without a new event. Returns (done, seconds from `since` until done
        or until given up)."""
        t0 = since
        self.grew = max(self.grew, t0)
        while True:
            self.poll()
            now = time.monotonic()
            if done(self.items):
                t_done = now - t0
                while time.monotonic() - self.grew < settle and time.monotonic() - t0 < WAIT_MAX:
                    time.sleep(0.05)
                    self.poll()
                return True, t_done
            if now - t0 >= WAIT_MAX or now - self.grew >= WAIT_QUIET:
                return False, now - t0
            time.sleep(0.1)


def uid_of(ev):
    m = ALICE_INBOX.match(ev.get('uri') or '')
    return int(m.group(1)) if m and m.group(1) else None


def message_new_uids(items):
    return collections.Counter(uid_of(e) for e in items if e.get('event') == 'MessageNew')


# ------------------------------------------------------------------------ Cyrus
SERIES = '3.6'


def profile_dir(profile):
    return golden_dir(SERIES, profile)


def msgid(tag, i):
    return f"<durable-{tag}-{i}@example.org>"


def numbered(tag, i):
    """The test message i of a check: its own Message-ID (lmtpd's duplicate suppression
    would drop a repeat) and subject."""
    return message(i % 60, f"durable {tag} {i}", msgid=False,
                   extra_headers=(f"Message-ID: {msgid(tag, i)}",))


def create_alice(box):
    adm = Session(box.sb, 'admin')
    adm.connect()
    typ, data = adm.do("CREATE user/alice", lambda m: m.create('user/alice'))
    if typ != 'OK':
        raise RuntimeError(f"CREATE user/alice: {typ} {data}")
    adm.logout()
    box.sb.wait_quiet()


def lmtp_connect(sb, master):
    conn = smtplib.LMTP(sb.lmtp, local_hostname='rig-client.test')
    pid = serving(master, 'lmtpd', unix_peer_inode(conn.sock))
    sb.say(f"lmtp: connected, served by lmtpd {pid}")
    return conn, pid


def deliver(conn, tag, i):
    """One delivery on an open connection; returns once lmtpd said 250 (raises otherwise)."""
    refused = conn.sendmail(FROM, ['alice'], numbered(tag, i))
    if refused:
        raise RuntimeError(f"delivery {i} refused: {refused}")


def deliver_alone(sb, tag, i):
    """One delivery on a connection of its own, ended with QUIT."""
    conn = smtplib.LMTP(sb.lmtp, local_hostname='rig-client.test')
    try:
        deliver(conn, tag, i)
    finally:
        try:
            conn.quit()
        except Exception:
            pass
    sb.say(f"lmtp: delivered {tag} {i} on a connection of its own")


def uids_by_msgid(sb):
    """Message-ID -> UID of alice's INBOX."""
    m = imaplib.IMAP4('127.0.0.1', sb.port, timeout=30)
    try:
        m.login('alice', sb.users['alice'])
        m.select('INBOX', readonly=True)
        typ, data = m.uid('FETCH', '1:*', '(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])')
        m.logout()
    except Exception:
        m.shutdown()
        raise
    out = {}
    for d in data:
        if isinstance(d, tuple):
            u = re.search(rb'UID (\d+)', d[0])
            h = re.search(rb'(?im)^Message-ID:\s*(<[^>]*>)', d[1])
            if u and h:
                out[h.group(1).decode()] = int(u.group(1))
    return out


def wanted_uids(sb, tag, numbers):
    ids = uids_by_msgid(sb)
    missing = [i for i in numbers if msgid(tag, i) not in ids]
    if missing:
        raise RuntimeError(f"acknowledged deliveries not in alice's INBOX: {missing[:10]}")
    return {ids[msgid(tag, i)]: i for i in numbers}


def duplicates_by_pid(items, kind, key):
    """For events of type kind: occurrences beyond the first of each key(ev), by pid."""
    seen, extra = set(), collections.Counter()
    for e in items:
        if e.get('event') != kind:
            continue
        k = key(e)
        if k is None:
            continue
        if k in seen:
            extra[e.get('pid')] += 1
        seen.add(k)
    return extra


def order_breaks(items, kind, key):
    """Processes whose events (first occurrences, by key) did not arrive in order."""
    seen, last, bad = set(), {}, set()
    for e in items:
        if e.get('event') != kind:
            continue
        k = key(e)
        if k is None or k in seen:
            continue
        seen.add(k)
        pid = e.get('pid')
        if pid in last and k < last[pid]:
            bad.add(pid)
        last[pid] = k
    return sorted(bad, key=str)


def listed(xs, n=12):
    xs = sorted(xs)
    return ', '.join(map(str, xs[:n])) + (f", ... ({len(xs)})" if len(xs) > n else '')


# ------------------------------------------------------------------------ (a) lmtp
def check_lmtp(prefix, profile, conf=(), total=300, per=10):
    name = f"lmtp-kill {profile}"
    tag = f"a-{profile}"
    with Box(prefix, conf, profile=profile_dir(profile), name=f'{profile}-lmtp', logs_prefix='durability-') as box:
        sb = box.sb
        master = master_pid(box.S)
        create_alice(box)
        ev = Events(sb)
        ev.poll()
        start = len(ev.items)
        killed, i = [], 0
        t0 = time.monotonic()
        while i < total:
            conn, pid = lmtp_connect(sb, master)
            for _ in range(per):
                deliver(conn, tag, i)
                i += 1
            kill(pid, signal.SIGKILL, master, 'lmtpd')
            killed.append(pid)
            sb.say(f"lmtp: SIGKILL to lmtpd {pid} after the 250 of delivery {i - 1}")
            conn.close()
            if wait_exit(pid, 5, reaped=True) is None:
                raise RuntimeError(f"lmtpd {pid} not reaped 5 s after SIGKILL")
        work = time.monotonic() - t0
        deliver_alone(sb, tag, total)   # a new lmtpd, left alive: it adopts the rings
        t_end = time.monotonic()
        want = wanted_uids(sb, tag, range(total + 1))

        def complete(items):
            got = message_new_uids(items[start:])
            return all(got[u] for u in want)

        done, waited = ev.wait(complete, t_end)
        items = [e for e in ev.items[start:] if e.get('event') == 'MessageNew' and uid_of(e) in want]
        got = collections.Counter(uid_of(e) for e in items)
        lost = [u for u in want if not got[u]]
        dup = duplicates_by_pid(items, 'MessageNew', uid_of)
        dups = sum(dup.values())
        stray = {p: n for p, n in dup.items() if p not in killed}
        over = {p: n for p, n in dup.items() if n > BATCH}
        unordered = order_breaks(items, 'MessageNew', uid_of)
        bad = []
        if lost:
            bad.append(f"lost {len(lost)} of {len(want)} (UIDs {listed(lost)}; the last delivery before "
                       f"each kill is UID 10, 20, ...)")
        if stray:
            bad.append(f"duplicates from processes not killed: {stray}")
        if over:
            bad.append(f"more than {BATCH} duplicates from one killed lmtpd: {over}")
        if unordered:
            bad.append(f"events of lmtpd {unordered} out of order")
        detail = (f"{total} deliveries acknowledged ({work:.1f} s), {len(killed)} lmtpd SIGKILLed right after "
                  f"every {per}th 250, + 1 delivery after; lost {len(lost)}, duplicates {dups}"
                  f" (most from one killed lmtpd: {max(dup.values(), default=0)})")
        detail += (f"; all {len(want)} MessageNew {waited:.1f} s after the last delivery" if done
                   else f"; gave up waiting {waited:.1f} s after the last delivery")
        return report(not bad, name, detail + ('' if not bad else ': ' + '; '.join(bad)))


# ------------------------------------------------------------------------ (b) imap
def store(m, op):
    """UID STORE 1 op FLAGS (\\Flagged), read up to the tagged reply with nothing in
    between, so that the caller can kill the imapd the moment it arrives.
    Returns (tagged line, whether an untagged FETCH said the flags changed)."""
    tag = m._new_tag()
    m.send(tag + f" UID STORE 1 {op}FLAGS (\\Flagged)\r\n".encode())
    changed = False
    while True:
        line = m.readline()
        if not line:
            raise EOFError("connection closed before the tagged reply")
        if line.startswith(tag + b' '):
            return line.rstrip(b'\r\n').decode(errors='replace'), changed
        if re.match(rb'\* \d+ FETCH \(.*FLAGS', line):
            changed = True


def check_imap(prefix, profile, conf=(), rounds=30):
    name = f"imap-kill {profile}"
    with Box(prefix, conf, profile=profile_dir(profile), name=f'{profile}-imap', logs_prefix='durability-') as box:
        sb = box.sb
        master = master_pid(box.S)
        create_alice(box)
        deliver_alone(sb, f"b-{profile}", 0)          # UID 1, the message flagged below
        sb.wait_quiet()
        groups = (conf_value(sb.conf, 'event_groups', 'message mailbox') or '').split()
        kinds = ({'+': 'FlagsSet', '-': 'FlagsClear'} if 'flags' in groups
                 else {'+': 'MailboxModseq', '-': 'MailboxModseq'})
        ev = Events(sb)
        ev.poll()
        start = len(ev.items)
        acked, unchanged, killed = [], [], []
        t0 = time.monotonic()
        for j in range(rounds + 1):
            op = '+' if j % 2 == 0 else '-'
            last = j == rounds            # the last imapd is left alive (and its sender)
            m = imaplib.IMAP4('127.0.0.1', sb.port, timeout=30)
            m.login('alice', sb.users['alice'])
            pid = serving(master, 'imapd', tcp_peer_inode(m.sock))
            typ, data = m.select('INBOX')
            if typ != 'OK':
                raise RuntimeError(f"SELECT INBOX: {typ} {data}")
            reply, changed = store(m, op)
            if not last:
                kill(pid, signal.SIGKILL, master, 'imapd')
                killed.append(pid)
            sb.say(f"imap: imapd {pid}: UID STORE 1 {op}FLAGS (\\Flagged) -> {reply!r} "
                   f"(flags changed: {changed}){'' if last else '; SIGKILL'}")
            if reply.split()[1:2] != ['OK']:
                raise RuntimeError(f"UID STORE {op}FLAGS: {reply}")
            acked.append((pid, kinds[op]))
            if not changed:
                unchanged.append(pid)
            if last:
                m.logout()
            else:
                try:
                    m.shutdown()
                except OSError:
                    pass
                if wait_exit(pid, 5, reaped=True) is None:
                    raise RuntimeError(f"imapd {pid} not reaped 5 s after SIGKILL")
        work = time.monotonic() - t0
        t_end = time.monotonic()
        want = collections.Counter(acked)

        def matches(items):
            return collections.Counter((e.get('pid'), e.get('event')) for e in items
                                       if e.get('event') in kinds.values()
                                       and ALICE_INBOX.match(e.get('uri') or '')
                                       and (e.get('event') == 'MailboxModseq' or e.get('uidset') == '1'))

        done, waited = ev.wait(lambda items: all(matches(items[start:])[k] >= n for k, n in want.items()), t_end)
        got = matches(ev.items[start:])
        lost = [k for k, n in want.items() if got[k] < n]
        dups = {k: got[k] - n for k, n in want.items() if got[k] > n}
        stray = [k for k in got if k not in want]
        bad = []
        if lost:
            bad.append(f"lost {len(lost)} of {len(acked)} (imapd {listed(p for p, _ in lost)})")
        if unchanged:
            bad.append(f"{len(unchanged)} STOREs changed nothing (imapd {listed(unchanged)}): "
                       f"the previous one's change was not kept")
        if any(k[0] not in killed for k in dups):
            bad.append(f"duplicates from processes not killed: {dups}")
        if any(n > BATCH for n in dups.values()):
            bad.append(f"more than {BATCH} duplicates from one killed imapd: {dups}")
        if stray:
            bad.append(f"events of {kinds['+']}/{kinds['-']} from no STORE of ours: {stray}")
        kind = '/'.join(sorted(set(kinds.values())))
        detail = (f"{len(acked)} STOREs acknowledged ({work:.1f} s), {len(killed)} imapd SIGKILLed as soon as "
                  f"the tagged OK arrived, the last left alive; {kind} lost {len(lost)}, "
                  f"duplicates {sum(dups.values())}")
        detail += (f"; all {len(acked)} {waited:.1f} s after the last STORE" if done
                   else f"; gave up waiting {waited:.1f} s after the last STORE")
        return report(not bad, name, detail + ('' if not bad else ': ' + '; '.join(bad)))


# ------------------------------------------------------------------------ (c) term
def check_term(prefix, profile, conf=(), count=20, down=5.0):
    name = f"term {profile}"
    tag = f"c-{profile}"
    with Box(prefix, conf, profile=profile_dir(profile), name=f'{profile}-term', logs_prefix='durability-') as box:
        sb = box.sb
        master = master_pid(box.S)
        flush_ms = int(conf_value(sb.conf, 'event_flush_timeout', '2000'))
        create_alice(box)
        ev = Events(sb)
        ev.poll()
        start = len(ev.items)
        box.runner('tap-stop')
        conn, pid = lmtp_connect(sb, master)
        for i in range(count):
            deliver(conn, tag, i)
        t0 = time.monotonic()
        kill(pid, signal.SIGTERM, master, 'lmtpd')
        exit_s = wait_exit(pid, 15 + 3 * flush_ms / 1000)
        sb.say(f"term: SIGTERM to lmtpd {pid} after {count} deliveries with the listener down; "
               f"exited after {exit_s} s")
        conn.close()
        wait_exit(pid, 5, reaped=True)
        time.sleep(max(0.0, down - (time.monotonic() - t0)))
        box.runner('tap-start')
        t_up = time.monotonic() - t0
        deliver_alone(sb, tag, count)
        t_end = time.monotonic()
        want = wanted_uids(sb, tag, range(count + 1))
        done, waited = ev.wait(lambda items: all(message_new_uids(items[start:])[u] for u in want), t_end)
        got = message_new_uids(ev.items[start:])
        lost = [u for u in want if not got[u]]
        dups = sum(max(0, got[u] - 1) for u in want)
        detail = (f"{count} deliveries with the listener down, SIGTERM to lmtpd {pid}, listener up {t_up:.1f} s "
                  f"after it, + 1 delivery by a new lmtpd: lost {len(lost)} of {len(want)}, duplicates {dups}")
        detail += (f"; all {waited:.1f} s after the last delivery" if done
                   else f"; gave up waiting {waited:.1f} s after the last delivery")
        report(not lost, f"{name}: events of the terminated lmtpd",
               detail + (f": lost UIDs {listed(lost)}" if lost else ''))

        limit = 1.5 * flush_ms / 1000
        if exit_s is None:
            report(False, f"{name}: exit time", f"lmtpd {pid} still running {15 + 3 * flush_ms / 1000:.0f} s after SIGTERM")
        else:
            report(exit_s <= limit, f"{name}: exit time",
                   f"lmtpd exited {exit_s * 1000:.0f} ms after SIGTERM (event_flush_timeout {flush_ms} ms, "
                   f"limit {limit * 1000:.0f} ms)")

        syslog = os.path.join(box.S, 'rig', 'syslog')
        if not os.path.exists(os.path.join(box.S, 'rig', 'syslog.pid')):
            report(None, f"{name}: one flush", "/dev/log belongs to the host's syslog: its lines are not read here")
        else:
            time.sleep(0.2)
            lines = [l for l in open(syslog, 'rb').read().decode('utf-8', 'replace').splitlines()
                     if f'[{pid}]:' in l and 'still queued' in l]
            shown = ' | '.join(re.sub(r'^.*?\]: ', '', l) for l in lines) or 'none'
            report(len(lines) == 1, f"{name}: one flush",
                   f"{len(lines)} \"still queued\" line(s) from lmtpd {pid}: {shown}")


CHECKS = {'lmtp': check_lmtp, 'imap': check_imap, 'term': check_term}


def main():
    # SIGTERM/SIGHUP (timeout, the driver) unwind the `with Box` blocks: sandboxes go down
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda n, f: sys.exit(128 + n))
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--prefix', help="default: the series' patched build (build/cyrus/patched for 3.6)")
    ap.add_argument('--profiles', default='default,all')
    ap.add_argument('--only', default=','.join(CHECKS))
    ap.add_argument('--conf', action='append', default=[], metavar='LINE',
                    help="an imapd.conf line added to the profile's (repeatable), e.g. 'event_spool_size: 0'")
    ap.add_argument('--series', default='3.6', choices=list(CYRUS_SERIES) + [v['version'] for v in CYRUS_SERIES.values()])
    o = ap.parse_args()
    global SERIES
    SERIES = series_name(o.series)
    o.prefix = o.prefix or build_prefix(SERIES)
    t_all = time.time()
    for profile in o.profiles.split(','):
        for check in o.only.split(','):
            t0 = time.time()
            try:
                CHECKS[check](o.prefix, profile, o.conf)
            except Exception as e:
                import traceback
                traceback.print_exc()
                report(False, f"{check} {profile}", f"aborted: {type(e).__name__}: {e}")
            print(f"   ({check} {profile}: {time.time() - t0:.1f} s)", flush=True)
    passed = sum(1 for r in RESULTS if r is True)
    failed = sum(1 for r in RESULTS if r is False)
    skipped = sum(1 for r in RESULTS if r is None)
    print(f"durability: {passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else '')
          + f" ({time.time() - t_all:.0f} s)")
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
