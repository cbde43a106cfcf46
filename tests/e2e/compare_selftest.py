#!/usr/bin/env python3
"""The comparator must notice what it is there to notice: plant one difference at a time
into a copy of a real run and expect compare.py to fail (and to pass on the unmodified copy).

    compare_selftest.py GOLDEN_DIR S
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
COMPARE = os.path.join(HERE, 'compare.py')


def first(ev, pred):
    return next(e for e in ev if pred(e['message']))


def mutations():
    def value(ev, steps):       # a wrong value
        e = first(ev, lambda m: m['event'] == 'MailboxCreate')
        e['message']['vnd.cmu.mbtype'] = 'x'

    def key_order(ev, steps):   # two keys swapped
        m = first(ev, lambda m: m['event'] == 'MailboxCreate')['message']
        ks = list(m)
        ks[2], ks[3] = ks[3], ks[2]
        first(ev, lambda m: m['event'] == 'MailboxCreate')['message'] = {k: m[k] for k in ks}

    def extra_key(ev, steps):   # a key stock does not send
        first(ev, lambda m: m['event'] == 'MailboxDelete')['message']['uidset'] = '1'

    def missing_event(ev, steps):
        i = next(i for i, e in enumerate(ev) if e['message']['event'] == 'MailboxRename')
        del ev[i]
        for s in steps['steps']:
            s['start'] -= s['start'] > i
            s['end'] -= s['end'] > i

    def swapped_events(ev, steps):
        i = next(i for i, e in enumerate(ev) if e['message']['event'] == 'vnd.cmu.MessageMove')
        ev[i - 1], ev[i] = ev[i], ev[i - 1]

    def uidset(ev, steps):
        first(ev, lambda m: m['event'] == 'MessageExpunge')['message']['uidset'] = '3:7'

    def envelope(ev, steps):
        ev[0]['method'] = 'mailto'

    def mailboxid_reuse(ev, steps):   # two different mailboxes with the same ID
        ids = [e['message']['mailboxID'] for e in ev if 'mailboxID' in e['message']]
        other = next(i for i in ids if i != ids[0])
        for e in ev:
            if e['message'].get('mailboxID') == other:
                e['message']['mailboxID'] = ids[0]

    def timestamp(ev, steps):
        ev[3]['message']['timestamp'] = '1321982376.849'

    def midset(ev, steps):
        first(ev, lambda m: 'vnd.cmu.midset' in m)['message']['vnd.cmu.midset'] = ['<other@example.org>']

    return [value, key_order, extra_key, missing_event, swapped_events, uidset, envelope,
            mailboxid_reuse, timestamp, midset]


def run(golden, d):
    r = subprocess.run([sys.executable, COMPARE, golden, d], capture_output=True, text=True)
    return r.returncode, r.stdout


def main():
    golden, S = sys.argv[1:3]
    ev0 = [json.loads(l) for l in open(os.path.join(S, 'events.jsonl'), 'rb') if l.strip()]
    steps0 = json.load(open(os.path.join(S, 'steps.json')))
    tmp = tempfile.mkdtemp(prefix='cmev-selftest-')
    failed = 0
    try:
        def write(ev, steps):
            with open(os.path.join(tmp, 'events.jsonl'), 'w') as f:
                f.write(''.join(json.dumps(e, ensure_ascii=False) + '\n' for e in ev))
            json.dump(steps, open(os.path.join(tmp, 'steps.json'), 'w'))
        write(ev0, steps0)
        rc, out = run(golden, tmp)
        if rc != 0:
            print("selftest: the unmodified copy does not pass:\n" + out)
            return 1
        for mut in mutations():
            ev, steps = json.loads(json.dumps(ev0)), json.loads(json.dumps(steps0))
            try:
                mut(ev, steps)
            except StopIteration:
                print(f"selftest: {mut.__name__}: nothing to mutate in this profile (skipped)")
                continue
            write(ev, steps)
            rc, out = run(golden, tmp)
            line = next((l.strip() for l in out.splitlines() if l.startswith('  step ') and 'UNEXPLAINED' not in l
                         and out.index(l) > out.find('UNEXPLAINED')), '')
            if rc == 1 and 'UNEXPLAINED' in out:
                print(f"selftest: planted {mut.__name__:<16} -> caught: {line}")
            else:
                failed += 1
                print(f"selftest: planted {mut.__name__:<16} -> NOT caught (exit {rc})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
