#!/usr/bin/env python3
"""Print `cmev-tap --envelope` lines as one readable line per event.

    pretty.py [--follow] [--raw] FILE      (FILE = S/events.jsonl; --follow: like tail -f)
"""
import argparse
import json
import os
import time

KEYS = ('uidset', 'vnd.cmu.oldUidset', 'oldMailboxID', 'flagNames', 'messages', 'modseq',
        'diskQuota', 'diskUsed', 'maxMessages', 'aclSubject', 'aclRights', 'messageSize',
        'vnd.cmu.midset', 'user')
SHORT = {'vnd.cmu.oldUidset': 'oldUidset', 'vnd.cmu.midset': 'midset', 'oldMailboxID': 'from'}


def line(raw, show_raw):
    try:
        env = json.loads(raw)
    except ValueError:
        return f"?? unparsable line: {raw[:120]!r}"
    m = env.get('message')
    if not isinstance(m, dict):
        return f"?? event is not JSON: {str(m)[:120]!r}"
    if show_raw:
        return json.dumps(m, ensure_ascii=False)
    ts = str(m.get('timestamp', ''))[11:23]
    svc = m.get('service', '')
    uri = str(m.get('uri', '')).replace('imap://', '')
    parts = []
    for k in KEYS:
        if k in m and m[k] not in ('', None):
            v = m[k]
            if k == 'oldMailboxID':
                v = str(v).replace('imap://', '')
            parts.append(f"{SHORT.get(k, k)}={json.dumps(v, ensure_ascii=False) if isinstance(v, (list, str)) and ' ' in str(v) else v}")
    if 'messageContent' in m:
        parts.append(f"content={len(m['messageContent'].encode())}B")
    if env.get('id'):
        parts.append(f"id={env['id']}")  # shown: the relay's consumer (make demo-relay) has one
    return f"{ts} {svc:<9} {m.get('event', '?'):<20} {uri}  {' '.join(parts)}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('file')
    ap.add_argument('--follow', action='store_true')
    ap.add_argument('--raw', action='store_true')
    o = ap.parse_args()
    while o.follow and not os.path.exists(o.file):
        time.sleep(0.05)
    with open(o.file, 'r', encoding='utf-8', errors='replace') as f:
        buf = ''
        while True:
            chunk = f.readline()
            if not chunk:
                if not o.follow:
                    break
                time.sleep(0.05)
                continue
            buf += chunk
            if not buf.endswith('\n'):
                continue
            print('  EVENT ' + line(buf.strip(), o.raw), flush=True)
            buf = ''


if __name__ == '__main__':
    try:
        main()
    except (KeyboardInterrupt, BrokenPipeError):
        pass
