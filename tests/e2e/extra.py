#!/usr/bin/env python3
"""End-to-end checks beyond the stock comparison, each under its own sandbox and config.

    extra.py [--prefix build/cyrus/patched] [--series 3.6|3.10|3.12]
             [--only quota,content,big,restart,dlist,notifyd,specialuse,mailboxid,visibleusers]

--series says which Cyrus the prefix holds (3.10: build/cyrus-3.10/patched, 3.12:
build/cyrus-3.12/patched); it decides the order the checks expect where 3.6 and 3.8+ differ
(3.10's and 3.12's append.c and lmtpd send MessageAppend and MessageNew before the commit's
MailboxModseq, 3.6.1 after).

  quota    QuotaExceed / QuotaWithin for MESSAGE and STORAGE limits, QuotaChange (new root,
           changed limits, SETQUOTA ()): the fields of the resource concerned, nothing else
           (stock 3.6.1 aborted imapd on all of these)
  content  messageContent in the five event_content_inclusion_mode values, size 1000, for a
           ~30 KB message with a >1000-byte header (LMTP and IMAP APPEND) and a small one,
           compared byte for byte with the stored message (FETCH BODY.PEEK[])
  big      an event larger than the datagram limit (300 KB message, standard mode, size 0;
           the adapter reads only the first 64 KB of it): arrives, valid JSON, datagram <=
           the limit, messageContent cut, the rest intact
  restart  the listener stopped while IMAP/LMTP generate events, started again: nothing lost,
           same order, same events as with the listener up
  dlist    notifysocket: dlist:<path> with cmev-tap --dlist (Cassandane style); a 100 KB
           message's messageContent arrives whole (no datagram limit there)
  notifyd  the build's own notifyd as a cyrus.conf service (Debian's line) with its `log`
           method: its syslog lines carry the event JSON
  specialuse  event_exclude_specialuse after the mailbox's special-use is set and removed by
           another imapd and by the same one, and after annotations.db is replaced by a copy
           renamed over it (the adapter caches it per process)
  mailboxid  mailboxID after a mailbox is deleted and created again under its name by the
           same imapd and by another one (the adapter caches it per process)
  visibleusers  (3.12 on) with event_extra_params vnd.cmu.visibleUsers, mailbox events list
           the users the ACL lets read the mailbox (stock 3.12 never sends it): owner, users
           given r, not anyone, admins, users without r or with a negative r entry

Environment: E2E_LOGS=DIR keeps each sandbox's events, syslog and transcript in
DIR/extra-<name>/; E2E_KEEP=1 keeps the sandbox directories themselves.

Prints one `PASS name: ...` / `FAIL name: ...` (or `SKIP`) line per assertion group and a
last line `extra: N passed, M failed`; exit status 1 if anything failed.
"""
import argparse
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, HERE)
from e2elib import (GOLDEN_DEFAULT, INTERNALDATE, SERIES as CYRUS_SERIES, Box, Session,  # noqa: E402
                    build_prefix, datagram_size, emailid, message, series_name, since)

QROOT = 'imap://cyrus-rig.test/user/alice'

# JSON key order of enum event_param (docs/stock-cyrus.md, quirks we keep), for
# "keys in stock order" checks (vnd.cmu.visibleUsers: Cyrus 3.12 only, and only sent when
# event_extra_params names it, as the visibleusers check does)
PARAM_ORDER = ("event timestamp service serverDomain serverPort clientIP clientPort oldMailboxID "
               "vnd.cmu.oldUidset mailboxID uri modseq diskQuota diskUsed maxMessages messages "
               "vnd.cmu.unseenMessages uidnext uidset vnd.cmu.midset flagNames pid aclSubject aclRights "
               "user messageSize vnd.cmu.mbtype serverFQDN vnd.cmu.mailboxACL vnd.cmu.visibleUsers vnd.cmu.davFilename "
               "vnd.cmu.davUid vnd.cmu.envelope vnd.cmu.sessionId bodyStructure vnd.fastmail.clientId "
               "vnd.fastmail.sessionId vnd.fastmail.convExists vnd.fastmail.convUnseen vnd.fastmail.cid "
               "vnd.fastmail.counters vnd.cmu.emailid vnd.cmu.threadid vnd.fastmail.jmapEmail "
               "vnd.fastmail.jmapStates messageContent").split()

RESULTS = []
SERIES = '3.6'


def appended(name):
    """The events of one APPEND or LMTP delivery (one message): `name` and the commit's
    MailboxModseq, in the order of the series (tests/golden/README.md)."""
    return [name, 'MailboxModseq'] if since(SERIES, '3.8') else ['MailboxModseq', name]


def report(ok, name, detail):
    tag = {True: 'PASS', False: 'FAIL', None: 'SKIP'}[ok]
    RESULTS.append(ok)
    print(f"{tag} {name}: {detail}", flush=True)
    return ok


def in_param_order(keys):
    idx = [PARAM_ORDER.index(k) for k in keys if k in PARAM_ORDER]
    return idx == sorted(idx) and all(k in PARAM_ORDER for k in keys)


def datagram_limit():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    b = s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    s.close()
    return min(b // 10 - 32, 65536)


def setup_alice(box, settle=None):
    """admin creates user/alice, alice logs in. `settle` (default: wait until the tap is
    quiet) separates the two sessions' events: each process sends from its own queue."""
    settle = settle or (lambda: box.sb.wait_quiet())
    adm = Session(box.sb, 'admin')
    adm.connect()
    adm.do("CREATE user/alice", lambda m: m.create('user/alice'))
    settle()
    a = Session(box.sb, 'alice')
    a.connect()
    return adm, a


def step(box, fn, quiet=0.3):
    """Run fn, return the events it produced."""
    n0 = box.sb.wait_quiet(quiet)
    fn()
    n1 = box.sb.wait_quiet(quiet)
    return [e['message'] for e in box.sb.events_json(n0, n1)]


def fetch_raw(sess, uid):
    typ, data = sess.do(f"UID FETCH {uid} BODY.PEEK[]", lambda m: m.uid('FETCH', str(uid), '(BODY.PEEK[])'))
    for d in data:
        if isinstance(d, tuple):
            return d[1]
    raise RuntimeError(f"no body for uid {uid}: {data!r}")


def uid_of(ev):
    m = re.search(r'/;UID=(\d+)$', ev.get('uri', ''))
    return int(m.group(1)) if m else None


# ------------------------------------------------------------------------------- (a) quota
def check_quota_event(name, evs, etype, want, absent):
    q = [e for e in evs if e['event'].startswith('Quota')]
    if len(q) != 1 or q[0]['event'] != etype:
        return report(False, name, f"expected exactly one {etype}, got {[e['event'] for e in evs]}")
    e = q[0]
    bad = [f"{k}={e.get(k, '<absent>')} (want {v})" for k, v in want.items() if e.get(k) != v]
    bad += [f"{k} present ({e[k]}) but the limit is not about it" for k in absent if k in e]
    if e.get('uri') != QROOT:
        bad.append(f"uri {e.get('uri')} (want the quota root {QROOT})")
    if e.get('user') != 'alice':
        bad.append(f"user {e.get('user')!r}")
    if not in_param_order(list(e)):
        bad.append(f"keys not in stock order: {list(e)}")
    if bad:
        return report(False, name, '; '.join(bad))
    shown = ', '.join(f"{k}={e[k]}" for k in ('diskQuota', 'diskUsed', 'maxMessages', 'messages') if k in e)
    return report(True, name, f"{etype} {shown}")


def check_quota_and_big(prefix):
    extra = ['event_groups: message quota flags mailbox',
             'event_extra_params: timestamp service messageContent messageSize diskUsed vnd.cmu.emailid']
    with Box(prefix, extra, name='quota+big') as box:
        adm, a = setup_alice(box)
        a.select('INBOX')
        small = [message(20 + i, f"quota test {i}") for i in range(4)]
        app = lambda raw, mbox='INBOX': a.do("APPEND", lambda m: m.append(mbox, None, INTERNALDATE, raw))  # noqa: E731
        res = {}

        ev = step(box, lambda: res.update(r=adm.do("SETQUOTA", lambda m: m.setquota('user/alice', '(MESSAGE 2)'))))
        check_quota_event("quota: QuotaChange, new root (MESSAGE 2; storage unlimited)", ev, 'QuotaChange',
                          {'diskQuota': -1, 'diskUsed': 0, 'maxMessages': 2, 'messages': 0}, ())
        step(box, lambda: (app(small[0]), app(small[1])))
        ev = step(box, lambda: res.update(r=app(small[2])))
        if res['r'][0] != 'NO':
            report(False, "quota: APPEND over MESSAGE limit", f"server said {res['r']}")
        check_quota_event("quota: QuotaExceed, MESSAGE limit", ev, 'QuotaExceed',
                          {'maxMessages': 2, 'messages': 2}, ('diskQuota', 'diskUsed'))
        a.select('INBOX')
        ev = step(box, lambda: (a.do("STORE", lambda m: m.store('1', '+FLAGS', '(\\Deleted)')),
                                a.do("EXPUNGE", lambda m: m.expunge())))
        check_quota_event("quota: QuotaWithin, MESSAGE limit", ev, 'QuotaWithin',
                          {'maxMessages': 2, 'messages': 1}, ('diskQuota', 'diskUsed'))
        ev = step(box, lambda: adm.do("SETQUOTA", lambda m: m.setquota('user/alice', '(STORAGE 1)')))
        check_quota_event("quota: QuotaChange, MESSAGE 2 -> unlimited, STORAGE unlimited -> 1", ev,
                          'QuotaChange', {'diskQuota': 1, 'diskUsed': 0, 'maxMessages': -1, 'messages': 1}, ())
        big3k = message(24, "3 KB", body="Body.\r\n" + ("y" * 70 + "\r\n") * 42)
        step(box, lambda: box.sb.lmtp_deliver(big3k))     # lmtp_strict_quota off: goes over
        used_kb = (len(small[1]) + len(big3k)) // 1024     # INBOX holds small[1] + big3k (+ headers)
        ev = step(box, lambda: res.update(r=app(small[3])))
        if res['r'][0] != 'NO':
            report(False, "quota: APPEND over STORAGE limit", f"server said {res['r']}")
        q = [e for e in ev if e['event'] == 'QuotaExceed']
        check_quota_event("quota: QuotaExceed, STORAGE limit", ev, 'QuotaExceed',
                          {'diskQuota': 1, 'diskUsed': q[0].get('diskUsed') if q else -2}, ('maxMessages', 'messages'))
        if q and not (used_kb <= q[0].get('diskUsed', -1) <= used_kb + 1):
            report(False, "quota: QuotaExceed diskUsed", f"{q[0].get('diskUsed')} KB, stored ~{used_kb} KB")
        r = a.select('INBOX')
        last = int(r[1][0])
        ev = step(box, lambda: (a.do("STORE", lambda m: m.store(str(last), '+FLAGS', '(\\Deleted)')),
                                a.do("EXPUNGE", lambda m: m.expunge())))
        check_quota_event("quota: QuotaWithin, STORAGE limit", ev, 'QuotaWithin',
                          {'diskQuota': 1, 'diskUsed': 0}, ('maxMessages', 'messages'))
        ev = step(box, lambda: adm.do("SETQUOTA ()", lambda m: m.setquota('user/alice', '()')))
        check_quota_event("quota: QuotaChange after SETQUOTA () (all limits removed)", ev, 'QuotaChange',
                          {'diskQuota': -1, 'diskUsed': 0, 'maxMessages': -1, 'messages': 1}, ())

        # ---------------------------------------------------------- (c) bigger than a datagram
        limit = datagram_limit()
        body = ''.join(f"line {i:05d} " + "abcdefghij" * 6 + "\r\n" for i in range(4250))   # ~300 KB
        big = message(30, "300 KB message", body=body)
        for how in ('LMTP', 'APPEND'):
            ev0 = box.sb.wait_quiet()
            if how == 'LMTP':
                box.sb.lmtp_deliver(big)
            else:
                app(big)
            box.sb.wait_quiet()
            raw_evs = [e for e in box.sb.events_json(ev0) if e['message'].get('event') in ('MessageNew', 'MessageAppend')]
            if len(raw_evs) != 1 or not isinstance(raw_evs[0]['message'], dict):
                report(False, f"big: {how} of a {len(big)}-byte message",
                       f"expected one parsed event, got {[type(e['message']).__name__ for e in raw_evs]}")
                continue
            env = raw_evs[0]
            e = env['message']
            stored = fetch_raw(a, uid_of(e))
            c = e.get('messageContent', '')
            size = datagram_size(env)
            bad = []
            if size > limit:
                bad.append(f"datagram {size} > limit {limit}")
            if not c or not stored.startswith(c.encode()) or len(c.encode()) >= len(stored):
                bad.append(f"messageContent ({len(c)} chars) is not a cut prefix of the stored message")
            if list(e)[-1] != 'messageContent':
                bad.append("messageContent not the last key")
            if e.get('messageSize') != len(stored):
                bad.append(f"messageSize {e.get('messageSize')} != stored {len(stored)}")
            if e.get('vnd.cmu.emailid') != emailid(stored):
                bad.append("emailid is not the stored message's GUID")
            # the rest intact: the same keys as the small events of the same kind above
            ref = next((r['message'] for r in box.sb.events_json(0, ev0)
                        if r['message'].get('event') == e['event'] and 'messageContent' in r['message']), None)
            if ref is None:
                bad.append(f"no earlier {e['event']} to compare the keys with")
            elif list(ref) != list(e):
                bad.append(f"keys {list(e)} differ from a small {e['event']}'s {list(ref)}")
            elif any(e[k] != ref[k] for k in ('service', 'user', 'vnd.cmu.mbtype', 'serverFQDN')):
                bad.append("service/user/mbtype/serverFQDN differ from a small event's")
            if not re.match(r'^imap://cyrus-rig\.test/user/alice;UIDVALIDITY=\d+/;UID=\d+$', e.get('uri', '')):
                bad.append(f"uri {e.get('uri')}")
            if size < limit - 64:
                bad.append(f"content cut more than needed: datagram {size} bytes, limit {limit}")
            report(not bad, f"big: {how} of a {len(stored)}-byte message",
                   '; '.join(bad) or f"datagram {size} <= {limit}, messageContent cut to {len(c.encode())} "
                                     f"of {len(stored)} bytes, the other {len(e) - 1} keys as in a small {e['event']}")

        # ---------------------------------------------------------- (d) listener restart
        check_restart(box, a, app)


# ------------------------------------------------------------------------------- (d) restart
def restart_ops(box, a, app, name):
    msgs = [message(40 + i, f"restart {name} {i}") for i in range(3)]
    a.do("CREATE", lambda m: m.create(f'INBOX/{name}'))
    for raw in msgs:
        app(raw, f'INBOX/{name}')
    a.select(f'INBOX/{name}')
    a.do("STORE", lambda m: m.store('1:3', '+FLAGS', '(\\Flagged)'))
    a.do("STORE", lambda m: m.store('2', '+FLAGS', '(\\Deleted)'))
    a.do("EXPUNGE", lambda m: m.expunge())
    a.do("CLOSE", lambda m: m.close())
    # a Message-ID of its own per round: lmtpd's duplicate suppression would drop a repeat
    box.sb.lmtp_deliver(message(43 if name == 'ctl' else 44, f"restart {name} lmtp"))
    a.do("RENAME", lambda m: m.rename(f'INBOX/{name}', f'INBOX/{name}-old'))
    a.do("DELETE", lambda m: m.delete(f'INBOX/{name}-old'))


def restart_view(ev, name):
    u = re.sub(r'UIDVALIDITY=\d+', 'UIDVALIDITY=*', ev.get('uri', '')).replace(name, 'NAME')
    if ev['event'] == 'MessageNew':
        u = re.sub(r'UID=\d+$', 'UID=*', u)   # INBOX UIDs differ between the two rounds
    return (ev.get('service'), ev['event'], u, ev.get('uidset'), ev.get('flagNames'))


def check_restart(box, a, app):
    n0 = box.sb.wait_quiet()
    restart_ops(box, a, app, 'ctl')
    n1 = box.sb.wait_quiet()
    control = [restart_view(e['message'], 'ctl') for e in box.sb.events_json(n0, n1)]
    box.runner('tap-stop')
    t_stop = time.time()
    restart_ops(box, a, app, 'rst')
    time.sleep(2.0)   # the senders retry with backoff meanwhile
    during = box.sb.count() - n1
    t_start = time.time()
    box.runner('tap-start')
    n2 = box.sb.wait_quiet(quiet=1.5, timeout=20, min_count=n1 + len(control))
    got_ev = [e['message'] for e in box.sb.events_json(n1, n2)]
    got = [restart_view(e, 'rst') for e in got_ev]
    bad = []
    if during:
        bad.append(f"{during} events written while the listener was down?")
    # Each process (imapd, lmtpd) has its own queue: its events must all arrive, in its
    # order. Across processes the interleaving after the restart depends on each
    # sender's retry timer, so it is compared per service.
    services = sorted({v[0] for v in control} | {v[0] for v in got}, key=str)
    for svc in services:
        c = [v for v in control if v[0] == svc]
        g = [v for v in got if v[0] == svc]
        if c != g:
            import difflib
            diff = '\n'.join(difflib.unified_diff([str(x) for x in c], [str(x) for x in g], lineterm='', n=1))
            bad.append(f"service {svc}: {len(g)} events after restart vs {len(c)} with the listener up:\n{diff}")
    if None in services:
        bad.append("events without service (event_extra_params service expected)")
    late = [e['event'] for e in got_ev if iso_to_epoch(e.get('timestamp')) > t_start]
    if late:
        bad.append(f"events created after the restart (not queued during the outage): {late}")
    report(not bad, "restart: listener stopped while IMAP+LMTP worked, then started",
           '; '.join(bad) or f"all {len(got)} events of the outage ({t_start - t_stop:.1f} s) arrived after the "
                             f"restart, each process's in order ({', '.join(f'{s}: {sum(1 for v in got if v[0] == s)}' for s in services)}), "
                             f"identical to the {len(control)} of the control round"
                             + ('' if got == control else '; interleaving across processes differs (independent queues)'))


def iso_to_epoch(ts):
    from datetime import datetime
    try:
        return datetime.fromisoformat(ts.replace('Z', '+00:00')).timestamp()
    except Exception:
        return 0.0


# ------------------------------------------------------------------------------- (b) content
def content_messages():
    filler = [f"X-Filler-{i:02d}: " + "h" * 60 for i in range(20)]           # header > 1000 bytes
    body = ''.join(f"body line {i:04d} " + "0123456789" * 6 + "\r\n" for i in range(400))  # ~30 KB
    big = message(50, "30 KB message, big header", body=body, extra_headers=filler)
    small = message(51, "small message")
    return big, small


def expected_content(mode, size, stored):
    hs = stored.index(b'\r\n\r\n') + 4          # Cyrus header_size: header + the empty line
    header, body = stored[:hs], stored[hs:]
    if mode == 'standard':
        return stored if (size == 0 or len(stored) <= size) else None
    if mode == 'message':
        return stored[:size] if size else stored
    if mode == 'header':
        return header[:size] if size else header
    if mode == 'body':
        return body[:size] if size else body
    if mode == 'headerbody':
        return header + (body[:size] if size else body)
    raise ValueError(mode)


def check_content(prefix, modes):
    big, small = content_messages()
    for mode in modes:
        size = 1000
        extra = [f'event_content_inclusion_mode: {mode}', f'event_content_size: {size}',
                 'event_extra_params: timestamp messageContent messageSize']
        with Box(prefix, extra, name=f'content-{mode}') as box:
            adm, a = setup_alice(box)
            n0 = box.sb.wait_quiet()
            a.do("APPEND big", lambda m: m.append('INBOX', None, INTERNALDATE, big))
            box.sb.lmtp_deliver(big)
            a.do("APPEND small", lambda m: m.append('INBOX', None, INTERNALDATE, small))
            box.sb.lmtp_deliver(small)
            box.sb.wait_quiet()
            evs = [e['message'] for e in box.sb.events_json(n0)
                   if e['message'].get('event') in ('MessageAppend', 'MessageNew')]
            a.select('INBOX')
            bad, seen = [], []
            for e in evs:
                uid = uid_of(e)
                stored = fetch_raw(a, uid)
                want = expected_content(mode, size, stored)
                got = e.get('messageContent')
                how = f"{e['event']} uid {uid} ({len(stored)} B)"
                if want is None:
                    if 'messageContent' in e:
                        bad.append(f"{how}: messageContent present ({len(got)} B), standard mode says none")
                    else:
                        seen.append(f"{how}: none")
                    continue
                if got is None:
                    bad.append(f"{how}: messageContent missing (want {len(want)} B)")
                elif got.encode() != want:
                    g = got.encode()
                    i = next((k for k in range(min(len(g), len(want))) if g[k] != want[k]), min(len(g), len(want)))
                    bad.append(f"{how}: got {len(g)} B, want {len(want)} B, first difference at byte {i}: "
                               f"got {g[max(0, i - 20):i + 20]!r} want {want[max(0, i - 20):i + 20]!r}")
                elif list(e)[-1] != 'messageContent':
                    bad.append(f"{how}: messageContent not the last key")
                else:
                    seen.append(f"{how}: {len(want)} B")
            if len(evs) != 4:
                bad.append(f"expected 4 message events, got {[e.get('event') for e in evs]}")
            report(not bad, f"content: mode {mode}, size {size}",
                   '; '.join(bad) or '; '.join(seen) + " (exact bytes)")


# ------------------------------------------------------------------------------- (e) dlist
def dlist_expect():
    return (['Login', 'MailboxCreate', 'Login', 'MailboxCreate'] + appended('MessageAppend') +
            appended('MessageNew') + ['Logout'])


def check_dlist(prefix):
    expect = dlist_expect()
    extra = ['notifysocket: dlist:@SANDBOX@/socket/notify-dlist',
             'event_groups: message mailbox access',
             'event_extra_params: messageContent']
    with Box(prefix, extra, name='dlist') as box:
        if not open(os.path.join(box.S, 'rig', 'notifysocket')).read().startswith('dlist:'):
            return report(False, "dlist", "notifysocket is not dlist:")
        n0 = box.sb.wait_quiet()
        # imapd and lmtpd send from their own queues: the order across processes is the
        # order of arrival, so each operation waits for its events (as scenario.py does)
        adm, a = setup_alice(box)
        box.sb.wait_quiet()
        step(box, lambda: a.do("CREATE", lambda m: m.create('INBOX/D')))
        step(box, lambda: a.do("APPEND", lambda m: m.append('INBOX/D', None, INTERNALDATE, message(60, "over dlist"))))
        body = ''.join(f"dlist line {i:05d} " + "0123456789" * 6 + "\r\n" for i in range(1400))  # ~100 KB
        step(box, lambda: box.sb.lmtp_deliver(message(61, "lmtp over dlist", body=body)))
        box.sb.wait_quiet(min_count=n0 + len(expect) - 1, timeout=10)
        new = [e['message'] for e in box.sb.events_json(n0)
               if isinstance(e['message'], dict) and e['message'].get('event') == 'MessageNew']
        a.select('INBOX')
        stored = fetch_raw(a, uid_of(new[0])) if new else b''
        a.logout()
        box.sb.wait_quiet(min_count=n0 + len(expect), timeout=10)
        evs = box.sb.events_json(n0)
        names = [e['message'].get('event') if isinstance(e['message'], dict) else None for e in evs]
        bad = []
        if names != expect:
            bad.append(f"events {names}, expected {expect}")
        if any(e.get('method') != 'log' or e.get('class') != 'EVENT' for e in evs):
            bad.append(f"METHOD/CLASS not log/EVENT: {[(e.get('method'), e.get('class')) for e in evs]}")
        app = [e['message'] for e in evs if isinstance(e['message'], dict) and e['message'].get('event') == 'MessageAppend']
        if app and app[0].get('uri', '').split(';')[0] != 'imap://cyrus-rig.test/user/alice/D':
            bad.append(f"MessageAppend uri {app[0].get('uri')}")
        if not new or len(stored) < 100_000 or new[0].get('messageContent', '').encode() != stored:
            bad.append(f"the {len(stored)}-byte message's messageContent is not the whole message")
        report(not bad, "dlist: notifysocket dlist:<path>, cmev-tap --dlist",
               '; '.join(bad) or f"{len(evs)} events over NOTIFY dlist connections: {', '.join(names)}; "
                                 f"messageContent of {len(stored)} bytes whole")


# --------------------------------------------------------------------------- (g) specialuse
def check_specialuse(prefix):
    """The adapter keeps each mailbox's special-use per process; it must see every change,
    made by another imapd or by its own, before the next event."""
    extra = ['event_exclude_specialuse: \\Junk', 'event_groups: flags']
    with Box(prefix, extra, name='specialuse') as box:
        adm, a = setup_alice(box)
        b = Session(box.sb, 'alice')
        b.connect()
        step(box, lambda: a.do("CREATE", lambda m: m.create('INBOX/Box')))
        step(box, lambda: a.do("APPEND", lambda m: m.append('INBOX/Box', None, INTERNALDATE,
                                                          message(70, "specialuse"))))
        a.select('INBOX/Box')

        def use(sess, value):
            arg = '"\\Junk"' if value else 'NIL'
            sess.raw("SETMETADATA", f'SETMETADATA INBOX/Box (/private/specialuse {arg})'.encode())

        def flag(label):
            evs = step(box, lambda: a.do("STORE", lambda m: m.uid('STORE', '1', '+FLAGS', f'(${label})')))
            return [e.get('event') for e in evs if isinstance(e, dict)]

        db = os.path.join(box.S, 'var', 'annotations.db')
        kept = db + '.junk'

        def keep():
            """A copy of annotations.db while \\Junk is set"""
            shutil.copy2(db, kept)
            st = os.stat(db)
            os.chown(kept, st.st_uid, st.st_gid)

        def put_back():
            """The copy renamed over the database, as a twoskip repack does: \\Junk again"""
            os.replace(kept, db)

        rounds = [("no special-use", None, False),
                  ("\\Junk set by another imapd", b, True),
                  ("removed by the same imapd", a, False),
                  ("\\Junk set by the same imapd", a, True),
                  ("removed by another imapd", b, False),
                  ("\\Junk set again by another imapd", b, True),
                  ("removed again by another imapd", b, False),
                  ("annotations.db replaced by a copy with \\Junk", put_back, True)]
        seen, bad = [], []
        for i, (what, who, junk) in enumerate(rounds):
            if callable(who):
                who()
            elif who:
                step(box, lambda: use(who, junk))
            if what.startswith("\\Junk set again"):
                keep()
            got = flag(f"L{i}")
            want = [] if junk else ['FlagsSet']
            seen.append(f"{what}: {got or 'none'}")
            if got != want:
                bad.append(f"{what}: events {got}, expected {want}")
        for sess in (a, b, adm):
            sess.logout()
        report(not bad, "specialuse: event_exclude_specialuse follows every change of the cached special-use",
               '; '.join(bad) or '; '.join(seen))


def check_mailboxid(prefix):
    """The adapter keeps the mailboxID of a mailbox name per process; a mailbox deleted and
    created again under that name, by this imapd or another, must show its new id."""
    with Box(prefix, ['event_groups: message mailbox'], name='mailboxid') as box:
        adm, a = setup_alice(box)
        b = Session(box.sb, 'alice')
        b.connect()

        def status_id():
            typ, data = a.do("STATUS", lambda m: m.status('INBOX/Re', '(MAILBOXID)'))
            m = re.search(rb'MAILBOXID \(([^)]+)\)', data[0] or b'')
            return m.group(1).decode() if m else None

        def ids(evs, kind):
            return [e.get('mailboxID') for e in evs if isinstance(e, dict) and e.get('event') == kind]

        def append():
            return ids(step(box, lambda: a.do("APPEND", lambda m: m.append(
                'INBOX/Re', None, INTERNALDATE, message(71, "mailboxid")))), 'MessageAppend')

        seen, bad = [], []
        for who, what in ((a, "first"), (a, "again by the same imapd"), (b, "again by another imapd")):
            if what != "first":
                step(box, lambda: who.do("DELETE", lambda m: m.delete('INBOX/Re')))
            created = ids(step(box, lambda: who.do("CREATE", lambda m: m.create('INBOX/Re'))), 'MailboxCreate')
            want = status_id()
            got = created + append()
            seen.append(f"{what}: {want}")
            if not want or got != [want, want]:
                bad.append(f"{what}: MailboxCreate/MessageAppend mailboxID {got}, STATUS says {want}")
        if len(set(seen)) != len(seen):
            bad.append("the mailbox kept its id across DELETE/CREATE")
        for sess in (a, b, adm):
            sess.logout()
        report(not bad, "mailboxid: events carry the new mailboxID after DELETE/CREATE by any imapd",
               '; '.join(bad) or '; '.join(seen))


# ------------------------------------------------------------------------------- (f) notifyd
NOTIFYD_LINE = ('  notify   cmd="notifyd -C @SANDBOX@/conf/imapd.conf" listen="@SANDBOX@/socket/notify" '
                'proto="udp" prefork=1')


def check_notifyd(prefix):
    if not os.path.exists(os.path.join(prefix, 'libexec', 'notifyd')):
        return report(False, "notifyd", f"{prefix}/libexec/notifyd missing")
    prof = tempfile.mkdtemp(prefix='cmev-e2e-notifyd-')
    try:
        shutil.copy(os.path.join(GOLDEN_DEFAULT, 'imapd.conf'), prof)
        conf = open(os.path.join(GOLDEN_DEFAULT, 'cyrus.conf')).read()
        # Debian's cyrus.conf: notify cmd="notifyd" listen="/var/run/cyrus/socket/notify" proto="udp" prefork=1
        conf = conf.replace('SERVICES {\n', 'SERVICES {\n' + NOTIFYD_LINE + '\n', 1)
        open(os.path.join(prof, 'cyrus.conf'), 'w').write(conf)
        extra = ['event_extra_params: timestamp messageContent messageSize']
        with Box(prefix, extra, profile=prof, name='notifyd') as box:
            syslog = os.path.join(box.S, 'rig', 'syslog')
            if not os.path.exists(os.path.join(box.S, 'rig', 'syslog.pid')):
                return report(None, "notifyd", "/dev/log belongs to the host's syslog: cannot read notifyd's lines here")
            # no tap here to watch for quiet: a pause between processes keeps their order
            adm, a = setup_alice(box, settle=lambda: time.sleep(0.3))
            time.sleep(0.3)
            a.do("CREATE", lambda m: m.create('INBOX/N'))
            a.do("APPEND", lambda m: m.append('INBOX/N', None, INTERNALDATE, message(70, "to notifyd")))
            time.sleep(0.3)
            big = message(71, "30 KB via notifyd", body=("z" * 98 + "\r\n") * 300)
            box.sb.lmtp_deliver(big)
            want = ['MailboxCreate', 'MailboxCreate'] + appended('MessageAppend') + appended('MessageNew')
            deadline = time.time() + 10
            evs = []
            while time.time() < deadline:
                evs = notifyd_events(syslog)
                if len(evs) >= len(want):
                    break
                time.sleep(0.2)
            time.sleep(0.3)
            evs = notifyd_events(syslog)
            names = [e.get('event') if isinstance(e, dict) else 'UNPARSABLE' for e in evs]
            bad = []
            if names != want:
                bad.append(f"notifyd logged {names}, expected {want}")
            new = [e for e in evs if isinstance(e, dict) and e.get('event') == 'MessageNew']
            if new:
                c = new[0].get('messageContent', '')
                if not c or len(c) >= new[0].get('messageSize', 0):
                    bad.append(f"30 KB MessageNew: messageContent {len(c)} of {new[0].get('messageSize')} bytes (expected cut)")
            ap = [e for e in evs if isinstance(e, dict) and e.get('event') == 'MessageAppend']
            if ap and ap[0].get('messageContent', '').encode() != message(70, "to notifyd"):
                bad.append("MessageAppend messageContent is not the appended message")
            report(not bad, "notifyd: the build's notifyd (cyrus.conf service, method log) logs our events",
                   '; '.join(bad) or f"{len(evs)} events in notifyd's syslog lines, complete JSON "
                                     f"(the 30 KB one with messageContent cut to fit notifyd's read size)")
    finally:
        shutil.rmtree(prof, ignore_errors=True)


def notifyd_events(path):
    out = []
    try:
        data = open(path, 'rb').read().decode('utf-8', 'replace')
    except FileNotFoundError:
        return out
    for line in data.splitlines():
        # notifyd logs under its cyrus.conf service name (notify[pid]); notify_log.c:
        # syslog(LOG_INFO, "%s, %s, %s, %s, %s \"%s\"", class, priority, user, mailbox, opts, message)
        m = re.search(r' notify\w*\[\d+\]: EVENT, , , ,  "(.*)"$', line)
        if m:
            try:
                out.append(json.loads(m.group(1)))
            except ValueError:
                out.append(m.group(1))
    return out


# ------------------------------------------------------------------------ visibleusers (3.12)
MAILBOX_EVENTS = ('MailboxCreate', 'MailboxDelete', 'MailboxRename', 'AclChange', 'MailboxModseq')
VISIBLE = 'vnd.cmu.visibleUsers'


def check_visibleusers(prefix):
    """Cyrus 3.12's vnd.cmu.visibleUsers, which stock never sends (docs/stock-cyrus.md, stock
    bug 11): with the word in event_extra_params, every mailbox event lists the users the
    ACL lets read the mailbox, sorted, tab-separated, without anyone, the admins and those a
    negative entry takes 'r' from, after vnd.cmu.mailboxACL; message events do not carry it."""
    with Box(prefix, ['event_groups: message mailbox',
                      'event_extra_params: timestamp vnd.cmu.visibleUsers'], name='visibleusers') as box:
        adm, a = setup_alice(box)
        box_name = 'INBOX/Shared'
        # (what, IMAP call, the event it makes, the visibleUsers it must carry)
        steps = [
            ("CREATE", lambda m: m.create(box_name), 'MailboxCreate', 'alice'),
            ("SETACL bob lr", lambda m: m.setacl(box_name, 'bob', 'lr'), 'AclChange', 'alice\tbob'),
            ("SETACL carol l (no r)", lambda m: m.setacl(box_name, 'carol', 'l'), 'AclChange', 'alice\tbob'),
            ("SETACL anyone r", lambda m: m.setacl(box_name, 'anyone', 'r'), 'AclChange', 'alice\tbob'),
            ("SETACL admin lr", lambda m: m.setacl(box_name, 'admin', 'lr'), 'AclChange', 'alice\tbob'),
            ("SETACL dave lr", lambda m: m.setacl(box_name, 'dave', 'lr'), 'AclChange', 'alice\tbob\tdave'),
            ("SETACL -bob r (negative)", lambda m: m.setacl(box_name, '-bob', 'r'), 'AclChange', 'alice\tdave'),
            ("DELETE", lambda m: m.delete(box_name), 'MailboxDelete', 'alice\tdave'),
        ]
        bad, seen = [], []
        for what, call, etype, want in steps:
            evs = [e for e in step(box, lambda: a.do(what, call)) if isinstance(e, dict)]
            ev = next((e for e in evs if e.get('event') == etype), None)
            if ev is None:
                bad.append(f"{what}: no {etype} in {[e.get('event') for e in evs]}")
                continue
            seen.append(f"{what}: {ev.get('vnd.cmu.visibleUsers')!r}")
            for e in evs:
                if e.get('event') not in MAILBOX_EVENTS:
                    continue
                got, keys = e.get('vnd.cmu.visibleUsers'), list(e)
                if got != want:
                    bad.append(f"{what}: {e.get('event')} visibleUsers {got!r}, want {want!r}")
                elif not in_param_order(keys) or keys.index(VISIBLE) != keys.index('vnd.cmu.mailboxACL') + 1:
                    bad.append(f"{what}: keys out of stock's order: {keys}")
        evs = step(box, lambda: a.do("APPEND", lambda m: m.append('INBOX', None, INTERNALDATE,
                                                                  message(72, "visible"))))
        if any(VISIBLE in e for e in evs if e.get('event') not in MAILBOX_EVENTS):
            bad.append(f"a message event carries visibleUsers: {evs}")
        for sess in (a, adm):
            sess.logout()
        report(not bad, "visibleusers: mailbox events list the users who may read the mailbox "
               "(event_extra_params vnd.cmu.visibleUsers)", '; '.join(bad) or '; '.join(seen))


CHECKS = ('quota', 'content', 'restart', 'big', 'dlist', 'notifyd', 'specialuse', 'mailboxid', 'visibleusers')
MODES = ('standard', 'message', 'header', 'body', 'headerbody')


def main():
    import signal
    # SIGTERM/SIGHUP (timeout, the driver) unwind the `with Box` blocks: sandboxes go down
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda n, f: sys.exit(128 + n))
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--prefix', help="default: the series' patched build (build/cyrus/patched for 3.6)")
    ap.add_argument('--only', default=','.join(CHECKS))
    ap.add_argument('--modes', default=','.join(MODES))
    ap.add_argument('--series', default='3.6', choices=list(CYRUS_SERIES) + [v['version'] for v in CYRUS_SERIES.values()])
    o = ap.parse_args()
    global SERIES
    SERIES = series_name(o.series)
    o.prefix = o.prefix or build_prefix(SERIES)
    only = set(o.only.split(','))
    jobs = []
    if only & {'quota', 'big', 'restart'}:
        jobs.append(('quota+big+restart', lambda: check_quota_and_big(o.prefix)))
    if 'content' in only:
        jobs.append(('content', lambda: check_content(o.prefix, o.modes.split(','))))
    if 'dlist' in only:
        jobs.append(('dlist', lambda: check_dlist(o.prefix)))
    if 'notifyd' in only:
        jobs.append(('notifyd', lambda: check_notifyd(o.prefix)))
    if 'specialuse' in only:
        jobs.append(('specialuse', lambda: check_specialuse(o.prefix)))
    if 'mailboxid' in only:
        jobs.append(('mailboxid', lambda: check_mailboxid(o.prefix)))
    if 'visibleusers' in only and since(SERIES, '3.12'):
        jobs.append(('visibleusers', lambda: check_visibleusers(o.prefix)))
    for name, fn in jobs:
        t0 = time.time()
        try:
            fn()
        except Exception as e:
            import traceback
            traceback.print_exc()
            report(False, name, f"aborted: {type(e).__name__}: {e}")
        print(f"   ({name}: {time.time() - t0:.1f} s)", flush=True)
    passed = sum(1 for r in RESULTS if r is True)
    failed = sum(1 for r in RESULTS if r is False)
    skipped = sum(1 for r in RESULTS if r is None)
    print(f"extra: {passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ''))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
