#!/usr/bin/env python3
"""Replay the golden scenario (the 54 numbered steps of tests/golden/*/steps.md) against a
sandbox made by cyrus-patch/run-sandbox.sh, and record which events each step produced.

    scenario.py S [--steps-out FILE] [--quiet-ms 300]

After every step it waits until S/events.jsonl has been quiet for --quiet-ms and records
the line count; the steps file (default S/steps.json) lists, per step: n, title, status,
first/end line of its events in S/events.jsonl, sessions that had to reconnect (only if
the server dropped the connection), and quota figures read with GETQUOTA.

The commands, messages (byte for byte: their sha1 GUIDs equal the golden emailids),
flags, sessions (admin, alice) and LMTP deliveries are the golden run's (transcript.log).
Where stock 3.6.1 crashed (steps 40, 41, 43, 45, 46 of the `all` profile) the golden
client reconnected; this client reconnects only if the connection really dropped.
"""
import argparse
import json
import os
import sys

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (INTERNALDATE, Sandbox, Session, big_body, message, parse_quota)  # noqa: E402

D = INTERNALDATE.encode()

MSG = {
    1: message(1, "single append"),
    2: message(2, "append with flags"),
    3: message(3, "multiappend one"),
    4: message(4, "multiappend two, no Message-ID", msgid=False),
    5: message(5, "multiappend three"),
    6: message(6, "lmtp with msgid"),
    7: message(7, "lmtp without msgid", msgid=False),
    8: message(8, "to archive"),
    9: message(9, "spam"),
    10: message(10, "fills quota"),
    11: message(11, "over quota"),
    12: message(12, "big, over storage quota", body=big_body(12)),
    13: message(13, "lmtp big", body=big_body(13)),
}


class Run:
    def __init__(self, sb):
        self.sb = sb
        self.admin = Session(sb, 'admin')
        self.alice = Session(sb, 'alice')
        self.quota = {}

    # --- helpers -------------------------------------------------------------------
    def ok(self, r, expect='OK'):
        typ = r[0]
        if typ == expect:
            return 'OK'
        return f"{typ} (expected {expect}): {r[1]!r}"[:300]

    def append(self, mbox, n, flags=None, expect='OK'):
        return self.ok(self.alice.do(f"APPEND {mbox} msg{n}",
                                     lambda m: m.append(mbox, flags, INTERNALDATE, MSG[n])), expect)

    def getquota(self):
        r = self.admin.do("GETQUOTA user/alice", lambda m: m.getquota('user/alice'))
        if r[0] == 'OK':
            self.quota = parse_quota(r[1])
        return r

    def setquota(self, limits):
        return self.admin.do(f"SETQUOTA user/alice {limits}", lambda m: m.setquota('user/alice', limits))

    def store_last_expunge(self):
        r = self.alice.select('INBOX')
        if r[0] != 'OK':
            return self.ok(r)
        last = int(r[1][0])
        r = self.alice.do(f"STORE {last} +FLAGS (\\Deleted)", lambda m: m.store(str(last), '+FLAGS', '(\\Deleted)'))
        if r[0] != 'OK':
            return self.ok(r)
        st = self.ok(self.alice.do("EXPUNGE", lambda m: m.expunge()))
        self.getquota()
        return st

    # --- the steps (titles as in golden steps.md) ---------------------------------
    def steps(self):
        a, adm = self.alice, self.admin
        S = []

        def step(title):
            def deco(fn):
                S.append((title, fn))
                return fn
            return deco

        @step("admin LOGIN")
        def _():
            adm.step = 1
            return self.ok(adm.connect())

        @step("admin CREATE user/alice (creates alice's INBOX)")
        def _():
            return self.ok(adm.do("CREATE user/alice", lambda m: m.create('user/alice')))

        @step("alice LOGIN")
        def _():
            return self.ok(a.connect())

        @step("CREATE INBOX/Work")
        def _():
            return self.ok(a.do("CREATE INBOX/Work", lambda m: m.create('INBOX/Work')))

        @step("CREATE INBOX/Work/Projects (nested)")
        def _():
            return self.ok(a.do("CREATE INBOX/Work/Projects", lambda m: m.create('INBOX/Work/Projects')))

        @step("CREATE INBOX/Archive")
        def _():
            return self.ok(a.do("CREATE INBOX/Archive", lambda m: m.create('INBOX/Archive')))

        @step("CREATE INBOX/Spam (USE (\\Junk)) [event_exclude_specialuse test]")
        def _():
            return self.ok(a.do("CREATE INBOX/Spam (USE (\\Junk))",
                                lambda m: m._simple_command('CREATE', 'INBOX/Spam', '(USE (\\Junk))')))

        @step("SUBSCRIBE INBOX/Work")
        def _():
            return self.ok(a.do("SUBSCRIBE INBOX/Work", lambda m: m.subscribe('INBOX/Work')))

        @step("SUBSCRIBE INBOX/Archive")
        def _():
            return self.ok(a.do("SUBSCRIBE INBOX/Archive", lambda m: m.subscribe('INBOX/Archive')))

        @step("UNSUBSCRIBE INBOX/Archive")
        def _():
            return self.ok(a.do("UNSUBSCRIBE INBOX/Archive", lambda m: m.unsubscribe('INBOX/Archive')))

        @step("APPEND INBOX, no flags (uid 1)")
        def _():
            return self.append('INBOX', 1)

        @step("APPEND INBOX with flags (\\Flagged $Label2) (uid 2)")
        def _():
            return self.append('INBOX', 2, '(\\Flagged $Label2)')

        @step("MULTIAPPEND INBOX 3 messages: (\\Seen), () without Message-ID, (\\Draft $Label1) (uids 3:5)")
        def _():
            p = (b'APPEND INBOX (\\Seen) ' + D + b' {%d+}\r\n' % len(MSG[3]) + MSG[3] +
                 b' ' + D + b' {%d+}\r\n' % len(MSG[4]) + MSG[4] +
                 b' (\\Draft $Label1) ' + D + b' {%d+}\r\n' % len(MSG[5]) + MSG[5])
            return self.ok(a.raw("APPEND (MULTIAPPEND 3 messages)", p))

        @step("APPEND INBOX/Archive (not selected)")
        def _():
            return self.append('INBOX/Archive', 8)

        @step("APPEND INBOX/Spam (\\Junk special-use folder)")
        def _():
            return self.append('INBOX/Spam', 9)

        @step("LMTP deliver to alice, with Message-ID (uid 6)")
        def _():
            return 'OK' if self.sb.lmtp_deliver(MSG[6]) == {} else 'LMTP refused'

        @step("LMTP deliver to alice, without Message-ID (uid 7)")
        def _():
            return 'OK' if self.sb.lmtp_deliver(MSG[7]) == {} else 'LMTP refused'

        @step("SELECT INBOX")
        def _():
            return self.ok(a.select('INBOX'))

        @step("FETCH 1 BODY[] (implicitly sets \\Seen)")
        def _():
            return self.ok(a.do("FETCH 1 (BODY[])", lambda m: m.fetch('1', '(BODY[])')))

        @step("FETCH 2 BODY.PEEK[] (does not set \\Seen)")
        def _():
            return self.ok(a.do("FETCH 2 (BODY.PEEK[])", lambda m: m.fetch('2', '(BODY.PEEK[])')))

        def store(seq, op, flags):
            return self.ok(a.do(f"STORE {seq} {op} {flags}", lambda m: m.store(seq, op, flags)))

        @step("STORE 2 +FLAGS (\\Seen)")
        def _():
            return store('2', '+FLAGS', '(\\Seen)')

        @step("STORE 3 +FLAGS (\\Deleted)")
        def _():
            return store('3', '+FLAGS', '(\\Deleted)')

        @step("STORE 4:6 +FLAGS ($Label1 \\Flagged)")
        def _():
            return store('4:6', '+FLAGS', '($Label1 \\Flagged)')

        @step("STORE 1:2 -FLAGS (\\Seen)")
        def _():
            return store('1:2', '-FLAGS', '(\\Seen)')

        @step("STORE 4 FLAGS (\\Answered $Label3) (replace)")
        def _():
            return store('4', 'FLAGS', '(\\Answered $Label3)')

        @step("STORE 7 +FLAGS (\\Seen \\Deleted $Label4) (mixed)")
        def _():
            return store('7', '+FLAGS', '(\\Seen \\Deleted $Label4)')

        @step("STORE 1,3,5 +FLAGS.SILENT ($Silent) (non-contiguous set)")
        def _():
            return store('1,3,5', '+FLAGS.SILENT', '($Silent)')

        @step("UID COPY 1:2 INBOX/Work")
        def _():
            return self.ok(a.do("UID COPY 1:2 INBOX/Work", lambda m: m.uid('COPY', '1:2', 'INBOX/Work')))

        @step("UID MOVE 4 INBOX/Work")
        def _():
            return self.ok(a.do("UID MOVE 4 INBOX/Work", lambda m: m.uid('MOVE', '4', 'INBOX/Work')))

        @step("EXPUNGE (uids 3 and 7 carry \\Deleted)")
        def _():
            return self.ok(a.do("EXPUNGE", lambda m: m.expunge()))

        @step("RENAME INBOX/Work INBOX/Job (has child Projects)")
        def _():
            return self.ok(a.do("RENAME INBOX/Work INBOX/Job", lambda m: m.rename('INBOX/Work', 'INBOX/Job')))

        @step("SETACL INBOX/Job bob lrs")
        def _():
            return self.ok(a.do("SETACL INBOX/Job bob lrs", lambda m: m.setacl('INBOX/Job', 'bob', 'lrs')))

        @step("SETACL INBOX/Job bob +w (modify)")
        def _():
            return self.ok(a.do("SETACL INBOX/Job bob +w", lambda m: m.setacl('INBOX/Job', 'bob', '+w')))

        @step("DELETEACL INBOX/Job bob")
        def _():
            return self.ok(a.do("DELETEACL INBOX/Job bob", lambda m: m.deleteacl('INBOX/Job', 'bob')))

        @step("STATUS INBOX (MESSAGES UIDNEXT) (no event expected)")
        def _():
            return self.ok(a.do("STATUS INBOX (MESSAGES UIDNEXT)", lambda m: m.status('INBOX', '(MESSAGES UIDNEXT)')))

        @step("admin GETQUOTA user/alice (none yet, NO expected)")
        def _():
            return self.ok(self.getquota(), 'NO')

        @step("admin SETQUOTA user/alice (STORAGE 100000 MESSAGE 100000) (new quota root)")
        def _():
            st = self.ok(self.setquota('(STORAGE 100000 MESSAGE 100000)'))
            self.getquota()
            return st

        @step("admin SETQUOTA user/alice (STORAGE 100000 MESSAGE used+1)")
        def _():
            used = self.quota['MESSAGE'][0]
            self.sb.say(f"message usage {used} -> MESSAGE limit {used + 1}")
            st = self.ok(self.setquota(f'(STORAGE 100000 MESSAGE {used + 1})'))
            self.getquota()
            return st

        @step("APPEND INBOX (reaches the MESSAGE limit exactly)")
        def _():
            return self.append('INBOX', 10)

        @step("APPEND INBOX (over MESSAGE limit: NO [OVERQUOTA])")
        def _():
            return self.append('INBOX', 11, expect='NO')

        @step("STORE <last> +FLAGS (\\Deleted), EXPUNGE (back under MESSAGE limit)")
        def _():
            return self.store_last_expunge()

        @step("admin SETQUOTA user/alice (STORAGE used_kb+2 MESSAGE 100000)")
        def _():
            self.getquota()
            used = self.quota['STORAGE'][0]
            self.sb.say(f"storage usage {used} KB -> STORAGE limit {used + 2}")
            st = self.ok(self.setquota(f'(STORAGE {used + 2} MESSAGE 100000)'))
            self.getquota()
            return st

        @step("APPEND INBOX 6KB message (over STORAGE limit: NO [OVERQUOTA])")
        def _():
            return self.append('INBOX', 12, expect='NO')

        @step("LMTP deliver 6KB message (lmtp_strict_quota off: accepted, usage goes over)")
        def _():
            st = 'OK' if self.sb.lmtp_deliver(MSG[13]) == {} else 'LMTP refused'
            self.getquota()
            return st

        @step("STORE <last> +FLAGS (\\Deleted), EXPUNGE (back under STORAGE limit)")
        def _():
            return self.store_last_expunge()

        @step("admin SETQUOTA user/alice () (remove all limits)")
        def _():
            return self.ok(self.setquota('()'))

        @step("STORE 1 +FLAGS (\\Deleted), CLOSE (implicit expunge)")
        def _():
            st = store('1', '+FLAGS', '(\\Deleted)')
            r = a.do("CLOSE", lambda m: m.close())
            a.selected = None
            return st if st != 'OK' else self.ok(r)

        @step("DELETE INBOX/Archive")
        def _():
            return self.ok(a.do("DELETE INBOX/Archive", lambda m: m.delete('INBOX/Archive')))

        @step("DELETE INBOX/Job (has child Projects: NO expected)")
        def _():
            return self.ok(a.do("DELETE INBOX/Job", lambda m: m.delete('INBOX/Job')), 'NO')

        @step("DELETE INBOX/Job/Projects (child)")
        def _():
            return self.ok(a.do("DELETE INBOX/Job/Projects", lambda m: m.delete('INBOX/Job/Projects')))

        @step("DELETE INBOX/Job (now childless)")
        def _():
            return self.ok(a.do("DELETE INBOX/Job", lambda m: m.delete('INBOX/Job')))

        @step("XMEID rig-client-1 (sets vnd.fastmail.clientId), then CREATE/DELETE INBOX/Tmp")
        def _():
            st = self.ok(a.do("XMEID rig-client-1", lambda m: m._simple_command('XMEID', 'rig-client-1')))
            st2 = self.ok(a.do("CREATE INBOX/Tmp", lambda m: m.create('INBOX/Tmp')))
            st3 = self.ok(a.do("DELETE INBOX/Tmp", lambda m: m.delete('INBOX/Tmp')))
            return next((s for s in (st, st2, st3) if s != 'OK'), 'OK')

        @step("alice LOGOUT")
        def _():
            return self.ok(a.logout(), 'BYE')

        @step("admin LOGOUT")
        def _():
            return self.ok(adm.logout(), 'BYE')

        @step("END")
        def _():
            return 'OK'

        return S


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('sandbox')
    ap.add_argument('--steps-out')
    ap.add_argument('--quiet-ms', type=int, default=300)
    o = ap.parse_args()
    sb = Sandbox(o.sandbox)
    out = o.steps_out or os.path.join(sb.path, 'steps.json')
    run = Run(sb)
    steps = []
    start = sb.wait_quiet(o.quiet_ms / 1000)
    failed = 0
    for n, (title, fn) in enumerate(run.steps(), 1):
        run.alice.step = run.admin.step = n
        sb.say(f"\n=== STEP {n:02d}: {title}   (events so far: {start})")
        try:
            status = fn()
        except Exception as e:  # a broken step must not stop the recording
            status = f"EXCEPTION {type(e).__name__}: {e}"
        end = sb.wait_quiet(o.quiet_ms / 1000)
        rec = {"n": n, "title": title, "status": status, "start": start, "end": end,
               "reconnected": [s.user for s in (run.admin, run.alice) if n in s.reconnects],
               "quota": {k: list(v) for k, v in run.quota.items()}}
        steps.append(rec)
        sb.say(f"--- step {n:02d} status: {status}; events {start}..{end}")
        if status != 'OK':
            failed += 1
            print(f"scenario: step {n} ({title}): {status}", file=sys.stderr)
        start = end
    with open(out, 'w') as f:
        json.dump({"sandbox": sb.path, "events": sb.events, "steps": steps}, f, indent=1)
    print(f"scenario: {len(steps)} steps, {steps[-1]['end']} events, {failed} step(s) not as expected; steps in {out}")
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
