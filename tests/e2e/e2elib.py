"""Shared helpers for the end-to-end checks (python3 stdlib only).

A sandbox S is a directory made by cyrus-patch/run-sandbox.sh `up`: S/rig/port (imap on
127.0.0.1), S/rig/users (user:password lines), S/rig/imapd.conf (lmtpsocket, ...), and
S/events.jsonl, one `cmev-tap --envelope` line per received event.
"""
import base64
import hashlib
import imaplib
import json
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time

imaplib.Commands.setdefault('XMEID', ('AUTH', 'SELECTED'))
imaplib.Commands.setdefault('MOVE', ('SELECTED',))

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
RUNNER = os.path.join(REPO, 'cyrus-patch', 'run-sandbox.sh')
GOLDEN = os.path.join(REPO, 'tests', 'golden')
GOLDEN_DEFAULT = os.path.join(GOLDEN, 'stock-3.6.1-default')

# The Cyrus series tested here, the one table the e2e scripts, the demo and the benchmarks
# read (run.sh and demo.sh through `e2elib.py --shell SERIES`):
#   version         what build-cyrus.sh builds (`make cyrus[-stock] CYRUS=<series>`)
#   golden          the version of its capture, tests/golden/stock-<golden>-<profile>
#   dir             build/<dir>/{patched,stock}: where `make cyrus[-stock]` installs it
#   logs            build/<logs>: tests/e2e/run.sh --series <series>
#   stock_profiles  the golden profiles the unpatched build must replay exactly
# Behaviour shared by a range of versions is decided by since(series, '3.8'), not by
# listing series: 3.8 and later send MessageAppend/MessageNew before the commit's
# MailboxModseq and feed idled (IMAP IDLE, NOTIFY) through mboxevent.
SERIES = {
    '3.6': dict(version='3.6.1', golden='3.6.1', dir='cyrus', logs='e2e', stock_profiles=('all',)),
    '3.10': dict(version='3.10.2', golden='3.10.1', dir='cyrus-3.10', logs='e2e-3.10',
                 stock_profiles=('default', 'all')),
    '3.12': dict(version='3.12.4', golden='3.12.4', dir='cyrus-3.12', logs='e2e-3.12',
                 stock_profiles=('default', 'all')),
}


def series_name(s):
    """'3.12' or '3.12.4' -> '3.12' (ValueError if unknown)."""
    for name, info in SERIES.items():
        if s in (name, info['version']):
            return name
    raise ValueError(f"unknown Cyrus series '{s}' ({', '.join(SERIES)})")


def vtuple(v):
    return tuple(int(x) for x in v.split('.'))


def since(series, v):
    """True if the series' Cyrus is version v or later: since('3.12', '3.8')."""
    return vtuple(SERIES[series_name(series)]['version']) >= vtuple(v)


def golden_dir(series, profile):
    return os.path.join(GOLDEN, f"stock-{SERIES[series_name(series)]['golden']}-{profile}")


def build_prefix(series, variant='patched'):
    """build/<dir>/patched or build/<dir>/stock of the series."""
    return os.path.join(REPO, 'build', SERIES[series_name(series)]['dir'], variant)

INTERNALDATE = '"02-Jan-2024 03:04:05 +0000"'
X_LINE = "x" * 76 + "\r\n"


def message(n, subject, msgid=True, body=None, date_sec=None, extra_headers=()):
    """The rig's test message n, byte for byte as the golden run sent it (CRLF)."""
    ds = n if date_sec is None else date_sec
    h = [f"From: Sender {n} <sender{n}@example.org>", "To: Alice <alice@example.org>",
         f"Subject: {subject}", f"Date: Tue, 02 Jan 2024 03:04:{ds:02d} +0000"]
    if msgid:
        h.append(f"Message-ID: <rig-{n}@example.org>")
    h += list(extra_headers)
    h += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=us-ascii"]
    b = f"Body of message {n}.\r\n" if body is None else body
    return ("\r\n".join(h) + "\r\n\r\n" + b).encode()


def big_body(n, lines=77):
    return f"Body of message {n}.\r\n" + X_LINE * lines


def emailid(raw):
    """Cyrus 3.6 emailid of a stored message: 'M' + the first 24 hex digits of its sha1 GUID."""
    return "M" + hashlib.sha1(raw).hexdigest()[:24]


def conf_value(conf_text, key, default=None):
    v = default
    for line in conf_text.splitlines():
        m = re.match(r'\s*' + re.escape(key) + r'\s*:\s*(.*?)\s*$', line)
        if m:
            v = m.group(1)
    return v


class Sandbox:
    def __init__(self, path, events=None):
        self.path = os.path.abspath(path)
        rig = os.path.join(self.path, 'rig')
        self.port = int(open(os.path.join(rig, 'port')).read())
        self.users = dict(l.strip().split(':', 1) for l in open(os.path.join(rig, 'users')) if ':' in l)
        self.conf = open(os.path.join(rig, 'imapd.conf')).read()
        self.lmtp = conf_value(self.conf, 'lmtpsocket')
        self.events = events or os.path.join(self.path, 'events.jsonl')
        self.log = open(os.path.join(rig, 'transcript.log'), 'a')

    def say(self, text):
        self.log.write(text.rstrip('\n') + '\n')
        self.log.flush()

    def event_lines(self):
        try:
            with open(self.events, 'rb') as f:
                data = f.read()
        except FileNotFoundError:
            return []
        return data.splitlines()[: data.count(b'\n')]

    def count(self):
        try:
            with open(self.events, 'rb') as f:
                return f.read().count(b'\n')
        except FileNotFoundError:
            return 0

    def wait_quiet(self, quiet=0.3, timeout=15.0, min_count=None):
        """Wait until S/events.jsonl has not grown for `quiet` seconds (and holds at
        least min_count lines); return the line count."""
        t0 = last_change = time.monotonic()
        n = self.count()
        while True:
            time.sleep(0.02)
            m = self.count()
            now = time.monotonic()
            if m != n:
                n, last_change = m, now
            elif now - last_change >= quiet and (min_count is None or n >= min_count):
                return n
            if now - t0 > timeout:
                return n

    def events_json(self, start=0, end=None):
        return [json.loads(l) for l in self.event_lines()[start:end]]

    def lmtp_deliver(self, raw, rcpt='alice', mail_from='rig-sender@example.org'):
        self.say(f"lmtp: deliver {len(raw)} bytes to {rcpt}")
        s = smtplib.LMTP(self.lmtp, local_hostname='rig-client.test')
        try:
            refused = s.sendmail(mail_from, [rcpt], raw)
        finally:
            try:
                s.quit()
            except Exception:
                pass
        self.say(f"lmtp: refused={refused}")
        return refused


class Box:
    """A sandbox for the duration of a `with` block (down even on failure). With E2E_LOGS=DIR,
    its events, syslog and transcript are kept in DIR/<logs_prefix><name>/; E2E_KEEP=1 keeps
    the sandbox directory itself."""

    def __init__(self, prefix, extra_lines=(), profile=GOLDEN_DEFAULT, name='box', logs_prefix='extra-'):
        self.prefix, self.extra_lines, self.profile, self.name = prefix, extra_lines, profile, name
        self.logs_prefix = logs_prefix
        self.tmp = tempfile.mkdtemp(prefix='cmev-e2e-')
        self.S = None

    def __enter__(self):
        extra = os.path.join(self.tmp, 'extra.conf')
        with open(extra, 'w') as f:
            f.write(''.join(l + '\n' for l in self.extra_lines))
        dirfile = os.path.join(self.tmp, 'sandbox-dir')
        env = dict(os.environ, SANDBOX_WATCH_PID=str(os.getpid()), SANDBOX_DIR_FILE=dirfile)
        r = subprocess.run([RUNNER, 'up', self.prefix, self.profile, extra], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            if os.path.exists(dirfile):
                subprocess.run([RUNNER, 'down', open(dirfile).read().strip()], capture_output=True)
            raise RuntimeError(f"run-sandbox up failed: {r.stderr.strip()}")
        self.S = r.stdout.strip().splitlines()[-1]
        self.sb = Sandbox(self.S)
        self.sb.say(f"=== {self.logs_prefix}check sandbox '{self.name}' ({self.S}); extra conf: {list(self.extra_lines)}")
        return self

    def __exit__(self, *exc):
        if self.S:
            subprocess.run([RUNNER, 'down', self.S], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            logs = os.environ.get('E2E_LOGS')
            if logs:   # keep what is needed to debug a failure, drop the mail spool
                d = os.path.join(logs, self.logs_prefix + self.name)
                shutil.rmtree(d, ignore_errors=True)
                os.makedirs(d, exist_ok=True)
                for f in ('events.jsonl', 'rig/syslog', 'rig/transcript.log', 'rig/imapd.conf',
                          'rig/master.out', 'rig/tap.err', 'conf/cyrus.conf'):
                    if os.path.exists(os.path.join(self.S, f)):
                        shutil.copy(os.path.join(self.S, f), d)
            if not os.environ.get('E2E_KEEP'):
                shutil.rmtree(self.S, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False

    def runner(self, *args):
        r = subprocess.run([RUNNER, *args, self.S], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"run-sandbox {' '.join(args)}: {r.stderr.strip()}")

    def events(self, start=0):
        return self.sb.events_json(start)


class Session:
    """An IMAP session that reconnects (login again, re-SELECT) only if the server
    actually dropped the connection, and records when it did."""

    def __init__(self, sb, user, password=None):
        self.sb, self.user = sb, user
        self.password = password or sb.users[user]
        self.m = None
        self.selected = None
        self.dead = False
        self.reconnects = []   # step numbers where we had to reconnect
        self.step = None

    def connect(self):
        self.m = imaplib.IMAP4('127.0.0.1', self.sb.port, timeout=30)
        r = self.m.login(self.user, self.password)
        self.sb.say(f"{self.user}: LOGIN -> {r[0]}")
        self.dead = False
        return r

    def _reconnect(self):
        self.sb.say(f"{self.user}: connection was dropped, reconnecting")
        self.reconnects.append(self.step)
        self.connect()
        if self.selected:
            r = self.m.select(self.selected)
            self.sb.say(f"{self.user}: reselect {self.selected} -> {r[0]}")

    def do(self, what, fn):
        """Run fn(imaplib object); returns (typ, data) or ('ABORT', [reason])."""
        if self.dead or self.m is None:
            self._reconnect()
        try:
            typ, data = fn(self.m)
        except (imaplib.IMAP4.abort, OSError, EOFError) as e:
            self.dead = True
            self.sb.say(f"{self.user}: {what}: connection dropped: {e}")
            return 'ABORT', [str(e)]
        except imaplib.IMAP4.error as e:
            self.sb.say(f"{self.user}: {what}: error: {e}")
            return 'BAD', [str(e)]
        self.sb.say(f"{self.user}: {what} -> {typ} {short(data)}")
        return typ, data

    def raw(self, what, payload):
        """Send one raw command line (payload: bytes after the tag, LITERAL+ allowed)."""
        def fn(m):
            tag = m._new_tag()
            m.tagged_commands[tag] = None
            m.send(tag + b' ' + payload + b'\r\n')
            return m._command_complete(what.split()[0].upper(), tag)
        return self.do(what, fn)

    def select(self, mbox='INBOX'):
        typ, data = self.do(f"SELECT {mbox}", lambda m: m.select(mbox))
        if typ == 'OK':
            self.selected = mbox
        return typ, data

    def logout(self):
        typ, data = self.do("LOGOUT", lambda m: m.logout())
        self.m = None
        return typ, data


def short(data, n=160):
    s = repr(data)
    return s if len(s) <= n else s[:n] + '...'


def parse_quota(data):
    """GETQUOTA untagged data -> {'STORAGE': (used, limit), 'MESSAGE': (used, limit)}."""
    out = {}
    for d in data or []:
        if isinstance(d, bytes):
            d = d.decode()
        m = re.search(r'\((.*)\)', d or '')
        if not m:
            continue
        t = m.group(1).split()
        for i in range(0, len(t) - 2, 3):
            out[t[i]] = (int(t[i + 1]), int(t[i + 2]))
    return out


def datagram_size(ev):
    """Bytes of the notifyd datagram a `cmev-tap --envelope` line came from:
    method\\0class\\0priority\\0user\\0mailbox\\0nopt\\0{opt\\0}message\\0[fname\\0].
    The event JSON is re-serialized compactly; the escapes jansson and json use have the
    same lengths (short forms, \\u00XX), so the byte count is the original one."""
    msg = ev['message']
    js = msg if isinstance(msg, str) else json.dumps(msg, separators=(',', ':'), ensure_ascii=False)
    parts = [ev['method'], ev['class'], ev['priority'], ev['user'], ev['mailbox'],
             str(len(ev['options']))] + list(ev['options']) + [js]
    if ev.get('fname'):
        parts.append(ev['fname'])
    return sum(len(p.encode()) + 1 for p in parts)


def b64(b):
    return base64.b64encode(b).decode()


def shell(series):
    """`e2elib.py --shell SERIES`: the series' row as shell assignments, for run.sh and
    demo.sh (exit status 2 and a message if the series is unknown)."""
    import shlex
    name = series_name(series)
    info = SERIES[name]
    return '\n'.join(f"{k}={shlex.quote(str(v))}" for k, v in (
        ('SERIES', name), ('VERSION', info['version']), ('GOLDEN_VERSION', info['golden']),
        ('PREFIX', build_prefix(name)), ('STOCK_PREFIX', build_prefix(name, 'stock')),
        ('LOGS', os.path.join(REPO, 'build', info['logs'])),
        ('STOCK_PROFILES', ' '.join(info['stock_profiles'])),
        ('SINCE_3_8', 1 if since(name, '3.8') else 0), ('ALL_SERIES', ' '.join(SERIES))))


if __name__ == '__main__':
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == '--shell':
        try:
            print(shell(sys.argv[2]))
        except ValueError as e:
            sys.exit(print(e, file=sys.stderr) or 2)
    else:
        sys.exit("usage: e2elib.py --shell SERIES   (prints the series' row of SERIES as shell assignments)")
