#!/usr/bin/env python3
"""IDLE (and NOTIFY) probe: how fast a Cyrus with idled tells IMAP clients about changes.

    idle.py [--series 3.10|3.12] [--prefix build/cyrus-3.10/stock] [--n 100] [--flags 100]
            [--profile tests/golden/stock-3.10.1-default] [--no-notify] [--no-idled]
            [--notifier] [--label NAME] [--json FILE]
    idle.py --table RESULT.json...      # p50/p99 of several runs side by side

From Cyrus 3.8 on, IMAP IDLE and NOTIFY (RFC 5465) are fed by mboxevent: imapd's and
lmtpd's idle_init() registers an idle notifier (mboxevent_set_idlenotifier), every
MESSAGE/FLAGS/MAILBOX/SUBS event goes to idled as JSON, and idled wakes the imapd
processes whose clients wait. This runs a sandbox (cyrus-patch/run-sandbox.sh) with idled
in cyrus.conf's DAEMON section and `event_notifier` UNSET (the profile's imapd.conf minus
that line: no event goes to notifyd, so only the idle path is measured; with --notifier it
stays set, events also go to notifyd's socket, where cmev-tap listens, and every delivery
must also have reached it as a MessageNew), then:

- idle-exists: a client in IDLE on alice's INBOX; N LMTP deliveries to alice, one at a
  time; per delivery the time from lmtpd's reply to DATA (250) to the untagged EXISTS
  (and, for comparison, from the end of the LMTP session, QUIT's reply);
- idle-fetch: another alice session toggles \\Flagged (STORE +FLAGS / -FLAGS); the time
  from its tagged OK to the IDLE client's untagged FETCH;
- if CAPABILITY offers NOTIFY: the same two with `NOTIFY SET (selected (MessageNew
  MessageExpunge FlagChange)) (personal (MessageNew MessageExpunge))` instead of IDLE
  (no IDLE command: the server pushes while the client is quiet), and notify-status: with
  INBOX/Other selected, deliveries to INBOX, time to the untagged STATUS INBOX.

Prints min / p50 / p99 / max in milliseconds and how many notifications were missed (none
within --wait seconds: without idled, IDLE only polls, every imapidlepoll seconds).
The patched Cyrus (build/cyrus-3.10/patched) feeds idled through the library's callback
(cmev_set_notify_callback); the unpatched one through stock mboxevent.c: run both, with and
without --notifier, and `--table` their --json files to compare.
--series (default 3.10) gives the defaults of --prefix (the series' unpatched build,
build/cyrus-3.12/stock for 3.12) and --profile (its golden `default`, stock-3.12.4-default;
tests/e2e/e2elib.py's SERIES table); Cyrus 3.8 and later only.
A negative time means the client heard of the change before the changing side's reply
arrived. --no-idled is the control: the same without idled (expect misses). Needs root;
exit status 1 if anything was missed or failed (with --no-idled: if nothing was missed).
"""
import argparse
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import SERIES, Box, build_prefix, golden_dir, message, since  # noqa: E402

SERIES_DEFAULT = '3.10'
NOTIFY_SET = 'NOTIFY SET (selected (MessageNew MessageExpunge FlagChange)) (personal (MessageNew MessageExpunge))'


def now():
    return time.perf_counter()


class Imap:
    """A raw IMAP connection; a reader thread timestamps every line as it arrives."""

    def __init__(self, port, name):
        self.name = name
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.lines = []            # (time, bytes)
        self.cv = threading.Condition()
        self.closed = False
        self.ntag = 0
        self.t = threading.Thread(target=self._reader, daemon=True)
        self.t.start()
        self.wait(lambda l: l.startswith(b'* OK'), 0, 10)

    def _reader(self):
        buf = b''
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    break
                t = now()
                buf += d
                while True:
                    i = buf.find(b'\r\n')
                    if i < 0:
                        break
                    line, rest = buf[:i], buf[i + 2:]
                    m = re.search(rb'\{(\d+)\+?\}$', line)
                    if m:   # a literal: keep it inside the line
                        n = int(m.group(1))
                        if len(rest) < n + 2:
                            break
                        i2 = rest.find(b'\r\n', n)
                        if i2 < 0:
                            break
                        line, rest = line + b'\r\n' + rest[:i2], rest[i2 + 2:]
                    buf = rest
                    with self.cv:
                        self.lines.append((t, line))
                        self.cv.notify_all()
        except OSError:
            pass
        with self.cv:
            self.closed = True
            self.cv.notify_all()

    def mark(self):
        with self.cv:
            return len(self.lines)

    def wait(self, pred, start, timeout):
        """First line at index >= start matching pred: (index, time, line), or None."""
        end = time.monotonic() + timeout
        with self.cv:
            i = start
            while True:
                while i < len(self.lines):
                    t, l = self.lines[i]
                    if pred(l):
                        return i, t, l
                    i += 1
                left = end - time.monotonic()
                if left <= 0 or self.closed:
                    return None
                self.cv.wait(left)

    def send(self, text):
        self.sock.sendall(text.encode() + b'\r\n')

    def cmd(self, text, timeout=30):
        """Send a tagged command; returns (time of the tagged reply, its line, untagged lines)."""
        self.ntag += 1
        tag = f'{self.name[:1].upper()}{self.ntag:04d}'
        start = self.mark()
        self.send(f'{tag} {text}')
        r = self.wait(lambda l: l.startswith(tag.encode() + b' '), start, timeout)
        if r is None:
            raise RuntimeError(f'{self.name}: no reply to {text!r}')
        i, t, l = r
        with self.cv:
            untagged = [x for _, x in self.lines[start:i]]
        if not l.startswith(tag.encode() + b' OK'):
            raise RuntimeError(f'{self.name}: {text!r} -> {l!r}')
        return t, l, untagged

    def idle(self):
        self.ntag += 1
        self.idle_tag = f'{self.name[:1].upper()}{self.ntag:04d}'
        start = self.mark()
        self.send(f'{self.idle_tag} IDLE')
        if self.wait(lambda l: l.startswith(b'+'), start, 10) is None:
            raise RuntimeError(f'{self.name}: IDLE not accepted')

    def done(self):
        start = self.mark()
        self.send('DONE')
        if self.wait(lambda l: l.startswith(self.idle_tag.encode() + b' OK'), start, 10) is None:
            raise RuntimeError(f'{self.name}: IDLE did not end')

    def close(self):
        try:
            self.cmd('LOGOUT', 5)
        except (RuntimeError, OSError):
            pass
        self.sock.close()


def lmtp_deliver(path, raw, rcpt='alice'):
    """One LMTP session; returns (time of the reply to DATA, time of the reply to QUIT)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    f = s.makefile('rb')

    def reply():
        while True:
            l = f.readline()
            if not l:
                raise RuntimeError('LMTP: connection closed')
            if l[3:4] != b'-':
                return now(), l

    def say(line, want):
        s.sendall(line + b'\r\n')
        t, l = reply()
        if not l.startswith(want):
            raise RuntimeError(f'LMTP: {line[:40]!r} -> {l!r}')
        return t

    try:
        t, l = reply()
        say(b'LHLO idle-probe.test', b'250')
        say(b'MAIL FROM:<idle-probe@example.org>', b'250')
        say(b'RCPT TO:<' + rcpt.encode() + b'>', b'250')
        say(b'DATA', b'354')
        body = re.sub(rb'(?m)^\.', b'..', raw)
        t_data = say(body + (b'' if body.endswith(b'\r\n') else b'\r\n') + b'.', b'250')
        t_quit = say(b'QUIT', b'221')
        return t_data, t_quit
    finally:
        s.close()


def stats(xs):
    xs = sorted(xs)
    if not xs:
        return None

    def pct(p):   # nearest rank
        return xs[max(0, min(len(xs) - 1, -(-p * len(xs) // 100) - 1))]
    return {'n': len(xs), 'min': xs[0], 'p50': pct(50), 'p99': pct(99), 'max': xs[-1],
            'mean': sum(xs) / len(xs)}


def fmt(name, st, missed, total):
    if st is None:
        return f"{name}: 0/{total} seen, {missed} missed"
    return (f"{name}: {st['n']}/{total} seen, {missed} missed; ms min {st['min']:.3f} "
            f"p50 {st['p50']:.3f} p99 {st['p99']:.3f} max {st['max']:.3f} mean {st['mean']:.3f}")


class Probe:
    def __init__(self, sb, o):
        self.sb, self.o = sb, o
        self.results = {}
        self.seq = 0          # messages in alice's INBOX
        self.msgno = 1000
        self.delivered = 0    # LMTP deliveries made
        self.flagged = set()  # sequence numbers carrying \Flagged

    def session(self, name, user='alice'):
        c = Imap(self.sb.port, name)
        c.cmd(f'LOGIN {user} {self.sb.users[user]}')
        return c

    def deliveries(self, watcher, n, pred_for, label):
        """n LMTP deliveries to alice; per delivery wait until watcher has a line that
        pred_for(expected_count) accepts."""
        lat_data, lat_quit, missed = [], [], 0
        for _ in range(n):
            self.msgno += 1
            start = watcher.mark()
            t_data, t_quit = lmtp_deliver(self.sb.lmtp, message(self.msgno, f'idle probe {self.msgno}',
                                                                 date_sec=self.msgno % 60))
            self.seq += 1
            self.delivered += 1
            r = watcher.wait(pred_for(self.seq), start, self.o.wait)
            if r is None:
                missed += 1
                continue
            lat_data.append((r[1] - t_data) * 1000)
            lat_quit.append((r[1] - t_quit) * 1000)
        self.report(label, lat_data, missed, n)
        self.report(label + '-after-quit', lat_quit, missed, n)

    def flag_changes(self, watcher, changer, n, label):
        lat, missed = [], 0
        flagged = self.flagged    # across measurements: a STORE that changes nothing sends nothing
        for k in range(n):
            seqno = k % min(self.seq, 20) + 1
            op = '-FLAGS' if seqno in flagged else '+FLAGS'
            flagged ^= {seqno}
            start = watcher.mark()
            t_ok, _, _ = changer.cmd(f'STORE {seqno} {op} (\\Flagged)')
            pat = re.compile(rb'^\* %d FETCH \(.*FLAGS' % seqno)
            r = watcher.wait(lambda l: bool(pat.match(l)), start, self.o.wait)
            if r is None:
                missed += 1
                continue
            lat.append((r[1] - t_ok) * 1000)
        self.report(label, lat, missed, n)

    def report(self, label, lat, missed, total):
        self.results[label] = {'stats': stats(lat), 'missed': missed, 'total': total, 'ms': lat}
        print(fmt(label, stats(lat), missed, total), flush=True)

    def exists(self, count):
        return lambda l: (m := re.match(rb'^\* (\d+) EXISTS', l)) is not None and int(m.group(1)) >= count

    def run(self):
        o = self.o
        admin = self.session('admin', 'admin')
        admin.cmd('CREATE user/alice')
        admin.close()
        # the IDLE client, and another session that changes flags
        idler = self.session('idler')
        _, _, caps = idler.cmd('CAPABILITY')
        cap = b' '.join(caps).upper().split()
        self.results['capability_notify'] = b'NOTIFY' in cap
        print(f"CAPABILITY offers NOTIFY: {'yes' if b'NOTIFY' in cap else 'no'}; IDLE: {'yes' if b'IDLE' in cap else 'no'}")
        idler.cmd('SELECT INBOX')
        changer = self.session('changer')
        changer.cmd('CREATE INBOX/Other')
        idler.idle()
        time.sleep(0.2)   # idled has the start message
        self.deliveries(idler, o.n, self.exists, 'idle-exists')
        changer.cmd('SELECT INBOX')
        self.flag_changes(idler, changer, o.flags, 'idle-fetch')
        idler.done()
        idler.close()
        ok = all(r['missed'] == 0 for r in self.results.values() if isinstance(r, dict))
        if self.results['capability_notify'] and not o.no_notify:
            nt = self.session('notifier')
            nt.cmd('SELECT INBOX')
            nt.cmd(NOTIFY_SET)
            time.sleep(0.2)
            self.deliveries(nt, o.n, self.exists, 'notify-exists')
            self.flag_changes(nt, changer, o.flags, 'notify-fetch')
            nt.cmd('SELECT INBOX/Other')
            time.sleep(0.2)

            def status(count):
                return lambda l: (m := re.match(rb'^\* STATUS "?INBOX"? \(.*MESSAGES (\d+)', l)) is not None \
                    and int(m.group(1)) >= count
            self.deliveries(nt, o.status, status, 'notify-status')
            nt.close()
            ok = all(r['missed'] == 0 for r in self.results.values() if isinstance(r, dict))
        changer.close()
        return ok


def notifyd_check(sb, p):
    """With event_notifier set, notifyd's socket must have had a MessageNew per delivery."""
    want = p.delivered
    n = sb.wait_quiet(0.5, min_count=want)
    got = sum(1 for e in sb.events_json() if e['message'].get('event') == 'MessageNew')
    p.results['notifyd_message_new'] = {'got': got, 'want': want}
    print(f"notifyd: {got}/{want} MessageNew ({n} events in all)")
    return got == want


def table(files):
    """p50 / p99 (ms) of each run's measurements, the runs as columns."""
    runs = [json.load(open(f)) for f in files]
    names = []
    for r in runs:
        names += [k for k, v in r.items() if isinstance(v, dict) and 'stats' in v and k not in names]
    print('| measurement | ' + ' | '.join(r.get('label', '?') for r in runs) + ' |')
    print('|---|' + '---|' * len(runs))
    for k in names:
        cells = []
        for r in runs:
            v = r.get(k)
            st = v and v['stats']
            cells.append('-' if not v else (f"missed {v['missed']}/{v['total']}" if not st else
                         f"{st['p50']:.2f} / {st['p99']:.2f}" + (f" ({v['missed']} missed)" if v['missed'] else '')))
        print(f'| {k} | ' + ' | '.join(cells) + ' |')
    print('(ms from the change to the client\'s untagged response, p50 / p99)')
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--series', default=SERIES_DEFAULT,
                    choices=[s for s in SERIES if since(s, '3.8')] + [SERIES[s]['version'] for s in SERIES if since(s, '3.8')],
                    help='the defaults of --prefix and --profile')
    ap.add_argument('--prefix', help="default: the series' unpatched build")
    ap.add_argument('--profile', help="imapd.conf + cyrus.conf to start from (event_notifier is removed); "
                    "default: the series' golden default profile")
    ap.add_argument('--n', type=int, default=100, help='LMTP deliveries per measurement')
    ap.add_argument('--flags', type=int, default=100, help='flag changes per measurement')
    ap.add_argument('--status', type=int, default=50, help='deliveries for notify-status')
    ap.add_argument('--wait', type=float, default=5.0, help='seconds to wait for each notification')
    ap.add_argument('--no-notify', action='store_true')
    ap.add_argument('--no-idled', action='store_true', help='control run: no idled (IDLE polls)')
    ap.add_argument('--json', help='write the results here')
    ap.add_argument('--notifier', action='store_true',
                    help="keep the profile's event_notifier: events go to notifyd's socket too")
    ap.add_argument('--label', help='name of this run in --table (default: the build and the notifier)')
    ap.add_argument('--table', nargs='+', metavar='JSON', help='print p50/p99 of these runs side by side')
    o = ap.parse_args()
    o.prefix = o.prefix or build_prefix(o.series, 'stock')
    o.profile = o.profile or golden_dir(o.series, 'default')
    if o.table:
        return table(o.table)
    if os.geteuid() != 0:
        print("idle.py: must run as root (Cyrus runs as user cyrus)")
        return 2
    tmp = tempfile.mkdtemp(prefix='cmev-idle-profile-')
    try:
        with open(os.path.join(o.profile, 'imapd.conf')) as f:
            conf = list(f)
        notifier = [l for l in conf if re.match(r'\s*event_notifier\s*:', l)]
        if o.notifier and not notifier:
            print(f"idle.py: --notifier, but {o.profile}/imapd.conf sets no event_notifier")
            return 2
        if not o.notifier:
            conf = [l for l in conf if l not in notifier] + ['# idle.py: event_notifier unset\n']
            os.environ['CMEV_TAP'] = 'none'   # nothing goes to notifyd anyway
        with open(os.path.join(tmp, 'imapd.conf'), 'w') as f:
            f.write(''.join(conf))
        shutil.copy(os.path.join(o.profile, 'cyrus.conf'), tmp)
        os.environ['SANDBOX_IDLED'] = '0' if o.no_idled else '1'   # 1: fail if the build has no idled
        t0 = time.monotonic()
        name = 'idle-notifier' if o.notifier else 'idle'
        with Box(os.path.abspath(o.prefix), profile=tmp, name=name, logs_prefix='') as box:
            print(f"idle.py: {o.prefix}, sandbox {box.S}, {'NO idled (control)' if o.no_idled else 'idled running'}, "
                  f"event_notifier {notifier[0].split(':', 1)[1].strip() if o.notifier else 'unset'}")
            p = Probe(box.sb, o)
            ok = p.run()
            if o.notifier:
                ok = notifyd_check(box.sb, p) and ok
        p.results['prefix'] = os.path.abspath(o.prefix)
        p.results['notifier'] = o.notifier
        p.results['label'] = o.label or (f"{os.path.basename(os.path.abspath(o.prefix))}, event_notifier "
                                         f"{'set' if o.notifier else 'unset'}")
        if o.json:
            with open(o.json, 'w') as f:
                json.dump(p.results, f, indent=1)
        print(f"idle.py: {'all notifications seen' if ok else 'SOME MISSED'} ({time.monotonic() - t0:.0f} s)")
        if o.no_idled:
            return 1 if ok else 0
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
