#!/usr/bin/env python3
"""Compare the events a scenario run captured (per step) with the golden stock-3.6.1 run.

    compare.py GOLDEN_DIR S [--steps S/steps.json] [--events S/events.jsonl]

GOLDEN_DIR is e.g. tests/golden/stock-3.6.1-all (events.jsonl, steps.md,
transcript.log); S is the sandbox scenario.py ran in. GOLDEN_DIR may be another series'
capture (tests/golden/stock-3.10.1-all, stock-3.12.4-all: same steps, some events in
another order, 3.12 with a MailboxModseq more on SUBSCRIBE/UNSUBSCRIBE, see
tests/golden/README.md): its name gives the profile and the default-profile folder of the
same version (stock-3.12.4-all -> stock-3.12.4-default). The patched 3.10.2 and 3.12.4 are
compared with the same rules as 3.6.1, the unpatched builds with --strict.

Per-run values are masked (tests/golden/README.md): timestamp, pid, serverPort, clientPort,
vnd.cmu.sessionId, vnd.fastmail.sessionId, mailboxID, UIDVALIDITY in uri/oldMailboxID,
lmtpd Message-IDs <cmu-lmtpd-PID-TIME-N@host>. Masking is checked, not blind: timestamps
must be ISO 8601 with milliseconds, ports/pids integers, mailboxIDs and UIDVALIDITYs must map
one-to-one between the runs. One more per-run value exists that the README does not list:
a message delivered by LMTP is stored with the headers lmtpd adds (Return-Path, Received
with the delivery date and the build's Cyrus version, X-Cyrus-Session-Id), so its
messageSize and GUID (vnd.cmu.emailid, jmapEmail.id) differ per run; they are masked only
after checking that emailid = 'M' + sha1(messageContent)[:24], messageSize =
len(messageContent) (when content is present) and that the size difference to stock,
corrected for the lengths of the session ID and of a Message-ID lmtpd made up, is the same
constant for every LMTP delivery.

Everything else must match: events per step, their order, each event's keys in order and
values, the notifyd envelope. The only differences accepted are stock bugs (3.6.1's,
still in 3.10 and 3.12) that we fix (docs/stock-cyrus.md, stock bugs 7, 9, 10), each recognised by a named rule and
printed. Anything else is an
unexplained difference: exit status 1.
"""
import argparse
import collections
import hashlib
import json
import os
import re
import sys

MASKED = '<masked>'
SESSION_KEYS = ('vnd.cmu.sessionId', 'vnd.fastmail.sessionId')
TS_RE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$')
UV_RE = re.compile(r'UIDVALIDITY=(\d+)')
LMTPD_MID_RE = re.compile(r'cmu-lmtpd-\d+-\d+-(\d+)@')

# Crash steps of the golden `all` run (stock hit the missing-parameter assert, stock
# bug 9 of docs/stock-cyrus.md): the
# quota event stock could not send, and the resource it is about.
CRASH_QUOTA = {
    40: ('QuotaExceed', 'MESSAGE', 'over MESSAGE limit'),
    41: ('QuotaWithin', 'MESSAGE', 'back under MESSAGE limit'),
    43: ('QuotaExceed', 'STORAGE', 'over STORAGE limit'),
    45: ('QuotaWithin', 'STORAGE', 'back under STORAGE limit'),
    46: ('QuotaChange', 'UNLIMITED', 'remove all limits'),
}

R_LOGIN = "Login after reconnect only in stock"
R_MODSEQ = "modseq dropped on multi-message event (stock kept it on 2-message events)"
R_CONTENT = "messageContent now present (stock never filled it)"
R_LOST = "event lost by the stock crash, sent now"
R_CLIENTID = ("vnd.fastmail.clientId leaked into stock's reconnected session "
              "(its new connection was served by the imapd process where XMEID had been set)")
M_LMTP = "lmtpd-added headers: messageSize/emailid/jmapEmail.id of an LMTP delivery (checked, masked)"


def load_jsonl(path):
    with open(path, 'rb') as f:
        return [json.loads(l) for l in f.read().splitlines() if l.strip()]


def parse_steps_md(path):
    steps, cur = [], None
    for line in open(path, encoding='utf-8'):
        line = line.rstrip('\n')
        if line.startswith('# Counts'):
            break
        m = re.match(r'## (\d+)\. (.*)$', line)
        if m:
            cur = {'n': int(m.group(1)), 'title': m.group(2), 'names': []}
            steps.append(cur)
        elif cur and line.startswith('- '):
            cur['names'].append(line[2:].split(' ', 1)[0])
    return steps


def parse_transcript(path):
    """-> {step: {'reconnected': set(users), 'aborted': bool}}"""
    info = collections.defaultdict(lambda: {'reconnected': set(), 'aborted': False})
    n = None
    for line in open(path, encoding='utf-8', errors='replace'):
        m = re.match(r'=== STEP (\d+):', line)
        if m:
            n = int(m.group(1))
            continue
        if n is None:
            continue
        m = re.match(r'(\w+): session lost .*reconnecting', line)
        if m:
            info[n]['reconnected'].add(m.group(1))
        if 'BYE Fatal error' in line and 'assertion failed' in line:
            info[n]['aborted'] = True   # imapd hit stock's missing-parameter assert
    return info


def golden_by_step(gdir):
    steps = parse_steps_md(os.path.join(gdir, 'steps.md'))
    events = load_jsonl(os.path.join(gdir, 'events.jsonl'))
    i = 0
    for s in steps:
        s['events'] = events[i:i + len(s['names'])]
        got = [e['message']['event'] for e in s['events']]
        if got != s['names']:
            raise SystemExit(f"{gdir}: steps.md and events.jsonl disagree at step {s['n']}: {s['names']} vs {got}")
        i += len(s['names'])
    if i != len(events):
        raise SystemExit(f"{gdir}: steps.md lists {i} events, events.jsonl has {len(events)}")
    tr = parse_transcript(os.path.join(gdir, 'transcript.log'))
    for s in steps:
        s['reconnected'] = tr[s['n']]['reconnected']
        s['aborted'] = tr[s['n']]['aborted']
    return steps, events


def uid_count(uidset):
    n = 0
    for part in str(uidset).split(','):
        if ':' in part:
            a, b = part.split(':')
            n += abs(int(b) - int(a)) + 1
        elif part:
            n += 1
    return n


class Comparison:
    def __init__(self, profile):
        self.profile = profile
        self.rules = collections.Counter()
        self.rule_lines = []
        self.masked = collections.Counter()
        self.unexplained = []
        self.compared = self.identical = 0
        self.map_fwd, self.map_back = {}, {}
        self.lmtp_deltas = []
        self.strict = False
        self.xmeids = set()   # client IDs some session set with XMEID (seen in our events)

    # --- bookkeeping ---------------------------------------------------------------
    def explain(self, step, rule, detail=''):
        self.rules[rule] += 1
        where = '' if rule.startswith('step ') else f"step {step}: "
        self.rule_lines.append(f"  {where}{rule}{': ' + detail if detail else ''}")

    def fail(self, step, what):
        self.unexplained.append(f"  step {step}: {what}")

    def bijection(self, step, kind, g, o):
        """Per-run identifiers must correspond one-to-one between the two runs."""
        kf, kb = (kind, g), (kind, o)
        if self.map_fwd.setdefault(kf, o) != o:
            self.fail(step, f"{kind}: golden {g} corresponds to both {self.map_fwd[kf]} and {o}")
        if self.map_back.setdefault(kb, g) != g:
            self.fail(step, f"{kind}: ours {o} corresponds to both golden {self.map_back[kb]} and {g}")

    # --- masking ---------------------------------------------------------------------
    def check_ours_runvalues(self, step, m):
        ev = m.get('event')
        if 'timestamp' in m and not TS_RE.match(str(m['timestamp'])):
            self.fail(step, f"{ev}: timestamp {m['timestamp']!r} is not ISO 8601 with milliseconds")
        for k in ('pid', 'serverPort', 'clientPort'):
            if k in m and not isinstance(m[k], int):
                self.fail(step, f"{ev}: {k} {m[k]!r} is not an integer")
        sids = [m[k] for k in SESSION_KEYS if k in m]
        if sids and (len(set(sids)) != 1 or not re.match(r'^cyrus-rig\.test-\d+-\d+-\d+-\d+$', sids[0])):
            self.fail(step, f"{ev}: unexpected session IDs {sids}")

    def mask(self, m):
        out = {}
        for k, v in m.items():
            if k in ('timestamp', 'pid', 'serverPort', 'clientPort', 'mailboxID') + SESSION_KEYS:
                v = MASKED
            elif k in ('uri', 'oldMailboxID') and isinstance(v, str):
                v = UV_RE.sub('UIDVALIDITY=' + MASKED, v)
            out[k] = mask_mids(v)
        return out

    def correspond(self, step, g, o):
        if 'mailboxID' in g and 'mailboxID' in o:
            self.bijection(step, 'mailboxID', g['mailboxID'], o['mailboxID'])
        for k in ('uri', 'oldMailboxID'):
            gu, ou = g.get(k), o.get(k)
            if isinstance(gu, str) and isinstance(ou, str):
                gm, om = UV_RE.search(gu), UV_RE.search(ou)
                if gm and om:
                    path = UV_RE.sub('', gu).split('/;UID=')[0]
                    self.bijection(step, f'UIDVALIDITY of {path}', gm.group(1), om.group(1))

    # --- one golden event against one of ours ---------------------------------------
    def compare_event(self, step, gev, oev, reconnected_only_in_stock=()):
        """Returns True if identical after masking and the accepted rules."""
        self.compared += 1
        g, o = gev['message'], oev['message']
        name = o.get('event')
        self.check_ours_runvalues(step, o)
        self.correspond(step, g, o)
        env_keys = ('method', 'class', 'priority', 'user', 'mailbox', 'options', 'fname')
        for k in env_keys:
            if gev.get(k) != oev.get(k):
                self.fail(step, f"{name}: envelope {k}: expected {gev.get(k)!r}, got {oev.get(k)!r}")
        if list(gev) != list(oev):
            self.fail(step, f"{name}: envelope keys {list(gev)} vs {list(oev)}")
        gm, om = self.mask(g), self.mask(o)
        applied = []
        # R_CLIENTID: a session stock had to re-open may land in an imapd process whose
        # client ID (XMEID, process-global in stock) was set by an earlier session
        if (not self.strict and g.get('user') in reconnected_only_in_stock and 'vnd.fastmail.clientId' in gm
                and gm['vnd.fastmail.clientId'] != '' and om.get('vnd.fastmail.clientId') == ''
                and gm['vnd.fastmail.clientId'] in self.xmeids):
            applied.append((R_CLIENTID, f"{name} of {g.get('user')}: stock {g['vnd.fastmail.clientId']!r}, ours ''"))
            gm['vnd.fastmail.clientId'] = ''
        # R_MODSEQ: stock kept modseq on some events about several messages
        if not self.strict and 'modseq' in gm and 'modseq' not in om and 'uidset' in om and uid_count(om['uidset']) > 1:
            del gm['modseq']
            applied.append((R_MODSEQ, f"{name} uidset {om['uidset']} (stock: modseq {g['modseq']})"))
        # R_CONTENT: stock never filled messageContent on APPEND / LMTP
        if not self.strict and name in ('MessageAppend', 'MessageNew') and 'messageContent' in om and 'messageContent' not in gm:
            problems = check_content(o)
            if problems:
                self.fail(step, f"{name}: messageContent present but wrong: {problems}")
            elif list(om)[-1] != 'messageContent':
                self.fail(step, f"{name}: messageContent is not the last key")
            else:
                del om['messageContent']
                applied.append((R_CONTENT, f"{name} {len(o['messageContent'].encode())} bytes = the stored message"))
        # lmtpd-added headers make size and GUID of an LMTP delivery per-run values
        if name == 'MessageNew' and o.get('service') == 'lmtpunix' and g.get('service') == 'lmtpunix':
            ok = True
            if 'vnd.cmu.emailid' in o:
                jid = o.get('vnd.fastmail.jmapEmail', {}).get('id') if isinstance(o.get('vnd.fastmail.jmapEmail'), dict) else None
                if 'vnd.fastmail.jmapEmail' in o and jid != o['vnd.cmu.emailid']:
                    self.fail(step, f"MessageNew: jmapEmail.id {jid} != emailid {o['vnd.cmu.emailid']}")
                    ok = False
                if 'messageContent' in o:
                    want = 'M' + hashlib.sha1(o['messageContent'].encode()).hexdigest()[:24]
                    if o['vnd.cmu.emailid'] != want:
                        self.fail(step, f"MessageNew: emailid {o['vnd.cmu.emailid']} is not the GUID of messageContent ({want})")
                        ok = False
            if 'messageSize' in o and 'messageSize' in g:
                gs_ = g.get('vnd.cmu.sessionId', '')
                os_ = o.get('vnd.cmu.sessionId', '')
                # lmtpd also writes the Message-ID it makes up (<cmu-lmtpd-PID-TIME-N@host>)
                gmid = sum(len(x) for x in g.get('vnd.cmu.midset', []) if 'cmu-lmtpd-' in x)
                omid = sum(len(x) for x in o.get('vnd.cmu.midset', []) if 'cmu-lmtpd-' in x)
                self.lmtp_deltas.append((step, (o['messageSize'] - g['messageSize'])
                                         - (len(os_) - len(gs_)) - (omid - gmid)))
            if ok:
                for k in ('messageSize', 'vnd.cmu.emailid'):
                    if k in gm and k in om:
                        gm[k] = om[k] = MASKED
                for d in (gm, om):
                    if isinstance(d.get('vnd.fastmail.jmapEmail'), dict):
                        d['vnd.fastmail.jmapEmail'] = dict(d['vnd.fastmail.jmapEmail'], id=MASKED)
                self.masked[M_LMTP] += 1
        # what is left must be identical, keys in order
        if list(gm) != list(om):
            self.fail(step, f"{name}: keys differ\n      expected {list(gm)}\n      got      {list(om)}")
        for k in gm:
            if k in om and gm[k] != om[k]:
                self.fail(step, f"{name}: {k}: expected {short(gm[k])}, got {short(om[k])}")
        if list(gm) == list(om) and all(gm[k] == om[k] for k in gm):
            if not applied:
                self.identical += 1
            for rule, detail in applied:
                self.explain(step, rule, detail)
            return True
        return False

    # --- a crash step: the quota event stock could not send, and what it swallowed ----
    def check_quota_event(self, step, oev, qtype, resource, template, quota):
        o = oev['message']
        rule = f"step {step}: {qtype} (stock crashed here)"
        if o.get('event') != qtype:
            self.fail(step, f"expected {qtype} where stock crashed, got {o.get('event')}")
            return
        self.check_ours_runvalues(step, o)
        want = dict(template['message'])
        want['event'] = qtype
        if resource == 'MESSAGE':
            drop = ('diskQuota', 'diskUsed')
            vals = {'maxMessages': quota['maxMessages'], 'messages': quota['messages']}
        elif resource == 'STORAGE':
            drop = ('maxMessages', 'messages')
            vals = {'diskQuota': quota['diskQuota'], 'diskUsed': quota['diskUsed']}
        else:
            drop = ()
            vals = {'diskQuota': -1, 'diskUsed': quota['diskUsed'], 'maxMessages': -1, 'messages': quota['messages']}
        for k in drop:
            want.pop(k, None)
        want.update(vals)
        wm, om = self.mask(want), self.mask(o)
        if list(wm) != list(om):
            self.fail(step, f"{qtype}: keys\n      expected {list(wm)}\n      got      {list(om)}")
            return
        bad = [f"{k}: expected {short(wm[k])}, got {short(om[k])}" for k in wm if wm[k] != om[k]]
        if bad:
            self.fail(step, f"{qtype}: " + '; '.join(bad))
            return
        fields = ', '.join(f"{k}={o[k]}" for k in ('diskQuota', 'diskUsed', 'maxMessages', 'messages') if k in o)
        self.explain(step, rule, f"{fields} (quota root {o.get('uri')}, user {o.get('user')!r})")

    def check_lost_event(self, step, oev, dref, pref):
        """An event stock never sent because imapd died first: it must look like the
        default-profile golden event of that step (values) and like the same event type
        elsewhere in this profile's golden run (keys)."""
        o = oev['message']
        self.check_ours_runvalues(step, o)
        om = self.mask(o)
        want_keys = list(self.mask(pref['message']))
        if 'modseq' in want_keys and 'uidset' in om and uid_count(om['uidset']) > 1:
            want_keys.remove('modseq')
        if list(om) != want_keys:
            self.fail(step, f"{o.get('event')} (lost by stock's crash): keys\n      expected {want_keys}\n      got      {list(om)}")
            return
        dm = self.mask(dref['message'])
        bad = [f"{k}: expected {short(dm[k])}, got {short(om[k])}" for k in dm if k in om and dm[k] != om[k]]
        if bad:
            self.fail(step, f"{o.get('event')} (lost by stock's crash): " + '; '.join(bad))
            return
        self.explain(step, R_LOST, f"{o.get('event')} uidset {o.get('uidset')} (the default-profile run has it)")


def mask_mids(v):
    if isinstance(v, str):
        return LMTPD_MID_RE.sub(r'cmu-lmtpd-PID-TIME-\1@', v)
    if isinstance(v, list):
        return [mask_mids(x) for x in v]
    if isinstance(v, dict):
        return {k: mask_mids(x) for k, x in v.items()}
    return v


def check_content(o):
    c = o['messageContent'].encode()
    probs = []
    if 'messageSize' in o and len(c) != o['messageSize']:
        probs.append(f"{len(c)} bytes, messageSize {o['messageSize']}")
    if 'vnd.cmu.emailid' in o and 'M' + hashlib.sha1(c).hexdigest()[:24] != o['vnd.cmu.emailid']:
        probs.append("sha1 of messageContent is not the message GUID (emailid)")
    return probs


def short(v, n=200):
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= n else s[:n] + '...'


def quota_at(steps, n):
    """GETQUOTA figures recorded after step n: {'STORAGE': (used, limit), ...}"""
    for s in steps:
        if s['n'] == n:
            return {k: tuple(v) for k, v in s.get('quota', {}).items()}
    return {}


def crash_quota_values(steps, n):
    q = lambda k: quota_at(steps, k)  # noqa: E731
    if n == 40:   # step 39 filled the MESSAGE quota exactly: usage = step 38's + 1
        return {'maxMessages': q(38)['MESSAGE'][1], 'messages': q(38)['MESSAGE'][0] + 1}
    if n == 41:
        return {'maxMessages': q(41)['MESSAGE'][1], 'messages': q(41)['MESSAGE'][0]}
    if n == 43:   # the rejected APPEND changes nothing: step 42's figures
        return {'diskQuota': q(42)['STORAGE'][1], 'diskUsed': q(42)['STORAGE'][0]}
    if n == 45:
        return {'diskQuota': q(45)['STORAGE'][1], 'diskUsed': q(45)['STORAGE'][0]}
    if n == 46:
        return {'diskUsed': q(45)['STORAGE'][0], 'messages': q(45)['MESSAGE'][0]}
    raise KeyError(n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('golden')
    ap.add_argument('sandbox')
    ap.add_argument('--steps')
    ap.add_argument('--events')
    ap.add_argument('--default-golden', help='golden run of the default profile (for events a crash swallowed)')
    ap.add_argument('--strict', action='store_true',
                    help='accept no stock-bug fix (to check a run of the unpatched build against golden)')
    o = ap.parse_args()

    gdir = os.path.abspath(o.golden)
    # stock-<version>-<profile>: stock-3.6.1-all, stock-3.10.1-default, stock-3.12.4-all, ...
    m = re.match(r'^(stock-\d+(?:\.\d+)+)-(.+)$', os.path.basename(gdir))
    version_dir, profile = (m.group(1), m.group(2)) if m else ('stock-3.6.1', os.path.basename(gdir))
    gsteps, gevents = golden_by_step(gdir)
    ddir = o.default_golden or os.path.join(os.path.dirname(gdir), version_dir + '-default')
    dsteps = {s['n']: s for s in golden_by_step(ddir)[0]} if os.path.isdir(ddir) else {}
    run = json.load(open(o.steps or os.path.join(o.sandbox, 'steps.json')))
    osteps = {s['n']: s for s in run['steps']}
    oevents = load_jsonl(o.events or os.path.join(o.sandbox, 'events.jsonl'))

    C = Comparison(profile)
    C.strict = o.strict
    qtemplate = next((e for e in gevents if e['message']['event'] == 'QuotaChange'), None)
    first_of = {}
    for e in gevents:
        first_of.setdefault(e['message']['event'], e)

    for gs in gsteps:
        n = gs['n']
        os_ = osteps.get(n)
        if os_ is None:
            C.fail(n, "step missing from the run")
            continue
        if os_['title'] != gs['title']:
            C.fail(n, f"title differs: {os_['title']!r} vs golden {gs['title']!r}")
        if os_['status'] != 'OK' and not (o.strict and gs['aborted']):
            C.fail(n, f"scenario step status: {os_['status']}")
        O = oevents[os_['start']:os_['end']]
        G = list(gs['events'])
        # Login after reconnect only in stock
        for user in sorted(gs['reconnected'] - set(os_.get('reconnected', [])) if not o.strict else []):
            idx = next((i for i, e in enumerate(G) if e['message']['event'] == 'Login'
                        and e['message'].get('user') == user), None)
            if idx is not None:
                G.pop(idx)
                C.explain(n, R_LOGIN, f"{user} reconnected after imapd died")
        for user in sorted(set(os_.get('reconnected', [])) - gs['reconnected'] if not o.strict else []):
            C.fail(n, f"our {user} session was dropped by the server and had to reconnect")

        for e in O:
            if e['message'].get('vnd.fastmail.clientId'):
                C.xmeids.add(e['message']['vnd.fastmail.clientId'])
        stock_only = gs['reconnected'] - set(os_.get('reconnected', []))
        if C.strict:
            stock_only = set()
            if gs['reconnected'] != set(os_.get('reconnected', [])):
                C.fail(n, f"reconnects: golden {sorted(gs['reconnected'])}, ours {sorted(os_.get('reconnected', []))}")
        if gs['aborted'] and not C.strict:
            if n not in CRASH_QUOTA or CRASH_QUOTA[n][2] not in gs['title']:
                C.fail(n, f"stock crashed at an unexpected step ({gs['title']})")
                continue
            qtype, resource, _ = CRASH_QUOTA[n]
            # where the quota event goes: in mailbox_commit() the quota update (and its
            # QuotaWithin) precedes the MailboxModseq of the same commit; stock's fatal()
            # still sent that MailboxModseq from its cleanup, so it is in the golden run.
            k = len(G)
            if qtype == 'QuotaWithin':
                k = max(i for i, e in enumerate(G) if e['message']['event'] == 'MailboxModseq')
            # events stock never sent because imapd died: the default-profile run has them
            gtypes = collections.Counter(e['message']['event'] for e in G)
            lost = []
            for e in dsteps.get(n, {}).get('events', []):
                t = e['message']['event']
                if gtypes[t] > 0:
                    gtypes[t] -= 1
                else:
                    lost.append(e)
            want_len = len(G) + 1 + len(lost)
            names = [e['message']['event'] for e in O]
            expect_names = ([e['message']['event'] for e in G[:k]] + [qtype] +
                            [e['message']['event'] for e in G[k:]] + [e['message']['event'] for e in lost])
            if len(O) != want_len or names != expect_names:
                C.fail(n, f"events {names}, expected {expect_names} (stock crashed here)")
                continue
            try:
                vals = crash_quota_values(run['steps'], n)
            except (KeyError, IndexError) as e:
                C.fail(n, f"no GETQUOTA figures recorded to check {qtype}: {e}")
                continue
            C.check_quota_event(n, O[k], qtype, resource, qtemplate, vals)
            for e, oe in zip(lost, O[len(G) + 1:]):
                C.check_lost_event(n, oe, e, first_of.get(e['message']['event'], e))
            O = O[:k] + O[k + 1:len(G) + 1]
        if len(O) != len(G):
            C.fail(n, f"{len(G)} events expected {[e['message']['event'] for e in G]}, "
                      f"got {len(O)} {[e['message']['event'] for e in O]}")
            continue
        for ge, oe in zip(G, O):
            if ge['message'].get('event') != oe['message'].get('event'):
                C.fail(n, f"event {oe['message'].get('event')} where golden has {ge['message'].get('event')}")
                continue
            C.compare_event(n, ge, oe, stock_only)

    extra = len(oevents) - (osteps[max(osteps)]['end'] if osteps else 0)
    if extra:
        C.fail('end', f"{extra} events after the last step")
    if C.lmtp_deltas:
        ds = {d for _, d in C.lmtp_deltas}
        if len(ds) != 1:
            C.fail('lmtp', f"LMTP messageSize differences to stock are not constant: {C.lmtp_deltas}")

    print(f"== compare {profile}: golden {gdir} vs {o.sandbox}")
    print(f"explained differences ({sum(C.rules.values())}):")
    for line in C.rule_lines:
        print(line)
    if C.unexplained:
        print(f"UNEXPLAINED differences ({len(C.unexplained)}):")
        for line in C.unexplained:
            print(line)
    print(f"summary {profile}: golden events {len(gevents)}, ours {len(oevents)}; "
          f"event pairs compared {C.compared}, identical {C.identical}; "
          f"explained differences {sum(C.rules.values())}, unexplained {len(C.unexplained)}")
    for rule, cnt in sorted(C.rules.items()):
        print(f"  {cnt:3d} x {rule}")
    for rule, cnt in C.masked.items():
        d = sorted({d for _, d in C.lmtp_deltas})
        print(f"  {cnt:3d} x {rule}" + (f" [size delta to stock, corrected for session-ID and lmtpd Message-ID lengths: {d}]" if d else ''))
    return 1 if C.unexplained else 0


if __name__ == '__main__':
    sys.exit(main())
