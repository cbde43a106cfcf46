"""Real Cyrus without the sender thread: is the thread what the patched
build's event overhead is made of? `event_delivery: sync` renders and sends
each event on Cyrus's own thread, on a persistent socket, as stock sends on
a fresh one each time: no thread (so none of glibc's multi-threaded costs),
no wake-ups, no queue. Its overhead is what building, rendering and sending
the events costs on their own; the default queued delivery adds the
thread's costs and takes the rendering and sending off Cyrus's thread.

Five sandboxes side by side (stock off and default; patched off, default
and default with event_delivery: sync), LMTP deliveries then single-message
STOREs in interleaved chunks as in realcyrus.py, ROUNDS rounds of new
sandboxes. Overhead = events on minus off within each chunk; per round the
median over its chunks.

usage: syncmode.py RESULTS_MD [N] [CHUNKS] [ROUNDS]
"""
import os
import shutil
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import realcyrus as rc  # noqa: E402

KINDS = (("stock", "off"), ("stock", "default"), ("patched", "off"), ("patched", "default"), ("patched", "sync"))


def five(tmp):
    confs = rc.profiles(tmp)
    sync = os.path.join(tmp, "sync")
    os.makedirs(sync)
    for f in ("imapd.conf", "cyrus.conf"):
        shutil.copy(os.path.join(confs["default"], f), sync)
    with open(os.path.join(sync, "imapd.conf"), "a") as f:
        f.write("event_delivery: sync\n")
    confs["sync"] = sync
    for build, prof in KINDS:
        yield rc.Target(build, prof, confs[prof])


def run_round(n, chunks, label):
    """{(work, build, profile): (overhead per chunk, sender CPU per chunk)}, in µs per message"""
    per = n // chunks
    with rc.started("cmev-syncmode-", five) as (_, targets):
        rc.interleave(targets, n, chunks, f"syncmode: {label}")
        t = {(x.build, x.profile): x for x in targets}
        return {(work,) + key: (t[key].overhead(t[(key[0], "off")], work, per), t[key].per_message(work, 2, per))
                for work in ("lmtp", "store") for key in KINDS if key[1] != "off"}


def main():
    path = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    chunks = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    nrounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    rounds = [run_round(n, chunks, f"round {r + 1}/{nrounds}") for r in range(nrounds)]

    if any(v for r in rounds for work in ("lmtp", "store") for v in r[(work, "patched", "sync")][1]):
        sys.exit("syncmode: the sync sandbox ran a sender thread (event_delivery: sync not in effect?)")

    def med(work, build, prof):
        return [statistics.median(r[(work, build, prof)][0]) for r in rounds]

    lines = [f"### Real Cyrus without the sender thread: {n} LMTP deliveries and {n} STOREs, events `default`, "
             f"{nrounds} rounds\n",
             "Five sandboxes side by side (stock off and default; patched off, default, and default with "
             "`event_delivery: sync`: each event rendered and sent on Cyrus's thread, on a persistent socket, no "
             "thread), chunks interleaved. Event overhead per message = CPU µs with events on minus off within "
             "each chunk; per round the median of its chunks; shown: median of the rounds (min–max). The ratio "
             "is each round's patched/stock.\n",
             "| event overhead per message | stock | patched, queued (sender thread) | patched, sync (no thread) "
             "| queued / stock | sync / stock | sender CPU, queued / sync |",
             "|---|---|---|---|---|---|---|"]
    for work, name in (("lmtp", "LMTP"), ("store", "STORE")):
        s, q, y = med(work, "stock", "default"), med(work, "patched", "default"), med(work, "patched", "sync")
        sender = {p: [statistics.median(r[(work, "patched", p)][1]) for r in rounds] for p in ("default", "sync")}
        lines.append(f"| {name} | {rc.spread(s, '{:.1f}')} | {rc.spread(q, '{:.1f}')} | {rc.spread(y, '{:.1f}')} | "
                     f"**{rc.spread([a / b for a, b in zip(q, s)], '{:.2f}')}** | "
                     f"**{rc.spread([a / b for a, b in zip(y, s)], '{:.2f}')}** | "
                     f"{statistics.median(sender['default']):.1f} / {statistics.median(sender['sync']):.1f} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("syncmode: results in", path)


if __name__ == "__main__":
    main()
