"""Real Cyrus: the events' cost measured within one process, and what the
patched build's is made of, against the least any event library could
cost there.

Two sandboxes side by side, stock and patched, events `default`, with
benches/floor.c preloaded. Their lmtpd and imapd switch chunk by chunk
between modes (floor.c): events off (mboxevent_new() returning NULL, as for
a type not enabled) and on, and in the patched one also

  sync  the library rendering and sending each event on Cyrus's thread
        (event_delivery: sync): no wake-ups, no batching
  send  the floor: the adapter gathers every parameter and the library
        builds every event, then each event is one send() of a datagram
        prepared in advance (a real event's bytes): no JSON, nothing but
        the kernel's part of delivering it
  none  the same, but nothing is sent at all

Everything is measured within one process because two processes alike in
every way differ by up to ±25 µs per LMTP delivery (realcyrus.py), more
than the costs compared. The price: once its first queued events started
the sender thread, every mode of the patched process runs with it, so its
off mode pays what the thread's mere existence costs too (threadtax.py,
threadprofile.py), and the overheads here leave that out.

`send` is what any library pays that hands each event to notifyd as it
happens. LMTP deliveries then single-message STOREs go in chunks, the two
sandboxes taking turns (`alternation`), ROUNDS rounds of new sandboxes. Overhead = the
mode minus off within the process, per chunk; per round the median of its
chunks.

usage: floor.py RESULTS_MD FLOOR_SO [N] [CHUNKS] [ROUNDS]
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import realcyrus as rc  # noqa: E402

# per build: (mode, floor.c's control byte)
MODES = {"stock": (("off", b"o"), ("default", b"r")),
         "patched": (("off", b"o"), ("default", b"r"), ("sync", b"y"), ("send", b"s"), ("none", b"n"))}
WORKS = (("lmtp", "LMTP"), ("store", "STORE"))
# Where the listener (notifyd's stand-in) runs: with Cyrus on its core, as
# everything the sandbox starts, or on the client's (when there are two or
# more cores), as notifyd on a server with cores to spare.
PLACES = (("with", "listener on Cyrus's core"), ("apart", "listener on a core apart"))


def golden_event():
    """The golden default profile's first MessageAppend event (the event each
    LMTP delivery sends), as compact JSON."""
    with open(os.path.join(rc.GOLDEN, "stock-3.6.1-default", "events.jsonl")) as f:
        msg = next(e["message"] for e in map(json.loads, f) if e["message"]["event"] == "MessageAppend")
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False)


class Mode(rc.Target):
    """A mode of a sandbox's processes: its chunks go to the sandbox with
    the mode set first, and are counted here."""

    def __init__(self, base, name, byte):
        self.base, self.build, self.profile, self.byte = base, base.build, name, byte
        self.runs = {"lmtp": [], "store": []}

    def chunk(self, work, go):
        with open(self.base.control, "r+b") as f:
            f.write(self.byte)
        go()
        self.runs[work].append(self.base.runs[work].pop())

    def deliver(self, n, raw):
        self.chunk("lmtp", lambda: self.base.deliver(n, raw))

    def store(self, n):
        self.chunk("store", lambda: self.base.store(n))


def move_listener(target):
    """The sandbox's listener, all its threads, onto this client's cores."""
    with open(os.path.join(target.path, "rig", "tap.pid")) as f:
        pid = int(f.read())
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), os.sched_getaffinity(0))


def sandboxes(preload, place="with", profiles=("default",), prefix="cmev-floor-"):
    """Stock and patched for each event profile, each told by a control file
    of its own (`Target.control`), the listener placed (see `rc.started`)."""
    def make(tmp):
        confs = rc.profiles(tmp)
        # Cyrus's processes run as cyrus and read the control files
        os.chmod(tmp, 0o755)
        for prof in profiles:
            for build in MODES:
                control = os.path.join(tmp, f"control-{build}-{prof}")
                with open(control, "wb") as f:
                    f.write(b"r")
                os.chmod(control, 0o644)
                t = rc.Target(build, prof, confs[prof],
                              {"LD_PRELOAD": preload, "CMEV_FLOOR": control, "CMEV_FLOOR_EVENT": golden_event()})
                t.control = control
                if place == "apart":
                    move_listener(t)
                yield t
    return rc.started(prefix, make)


def alternation(modes):
    """An order for rc.interleave in which the two sandboxes' chunks take
    turns, so that each process's chunks are equally far apart: one chunk
    of the other sandbox between any two of its own. Chunks of the same
    work with events off, not counted, make up for the stock sandbox's
    fewer modes. Each sandbox's modes in a row instead (rc.rotated) put its
    first mode after the other sandbox's chunks and the rest right after
    its own: on the host of 2026-11-30 events built and dropped came out
    cheaper than off, as lowrate.py's on commands did for the same reason."""
    by_build = [[m for m in modes if m.build == b] for b in rc.BUILDS]
    turns = max(len(ms) for ms in by_build)
    spacers = [Mode(ms[0].base, "spacer", b"o") if len(ms) < turns else None for ms in by_build]

    def order(_, c):
        ordered = [rc.rotated(ms, c) for ms in by_build]
        return [ms[i] if i < len(ms) else spacer for i in range(turns) for ms, spacer in zip(ordered, spacers)]
    return order


def run_round(preload, place, n, chunks, label):
    """The round's Modes, and per sandbox its lmtpd's and imapd's threads and
    the events its listener received."""
    with sandboxes(preload, place) as (_, targets):
        modes = [Mode(x, name, byte) for x in targets for name, byte in MODES[x.build]]
        rc.interleave(modes, n, chunks, f"floor: {label}", alternation(modes))
        threads = {x.build: (len(os.listdir(f"/proc/{x.lmtpd}/task")), len(os.listdir(f"/proc/{x.imapd}/task")))
                   for x in targets}
        for x in targets:
            x.finish()
        return modes, threads, {x.build: x.events for x in targets}


def check(rounds, n):
    """Each mode did what it stands for, or the table would lie: events from
    the modes that send (and the MailboxCreate made before), none from off
    and none; a sender thread in patched only, idle in sync mode."""
    for modes, threads, events in rounds:
        want = {"stock": 1 + 3 * n, "patched": 1 + 3 * 3 * n}
        if events != want:
            sys.exit(f"floor: events received {events}, expected {want}")
        if threads != {"stock": (1, 1), "patched": (2, 2)}:
            sys.exit(f"floor: threads per lmtpd/imapd {threads}: the patched build's sender missing?")
        sync = next(m for m in modes if m.profile == "sync")
        if any(r[2] for work in ("lmtp", "store") for r in sync.runs[work]):
            sys.exit("floor: the sender thread worked in sync mode (event_delivery: sync not in effect?)")


def main():
    path, preload = sys.argv[1], os.path.abspath(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    chunks = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    nrounds = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    places = PLACES if rc.SERVER_CPU else PLACES[:1]
    rounds = {p: [] for p, _ in places}
    for r in range(nrounds):
        for p, _ in places:
            rounds[p].append(run_round(preload, p, n, chunks, f"round {r + 1}/{nrounds}, {p}"))
    per = n // chunks
    over = {}
    for p, _ in places:
        check(rounds[p], n)
        over[p] = []
        for modes, _, _ in rounds[p]:
            t = {(m.build, m.profile): m for m in modes}
            over[p].append({(work, b, k): t[(b, k)].overhead(t[(b, "off")], work, per)
                            for work, _ in WORKS for b, k in t if k != "off"})

    def med(p, work, build, kind):
        return [statistics.median(o[(work, build, kind)]) for o in over[p]]

    def pooled(p, work, build, kind):
        return [v for o in over[p] for v in o[(work, build, kind)]]

    kinds = ("default", "sync", "send", "none")
    lines = [f"### Real Cyrus, events measured within one process: {n} LMTP deliveries and {n} STOREs per mode, "
             f"events `default`, {nrounds} rounds\n",
             "Stock and patched side by side, `benches/floor.c` preloaded; their lmtpd and imapd switch chunk by "
             "chunk between events off (`mboxevent_new()` returning NULL) and on: *queued* is the library as "
             "shipped (a sender thread renders and sends); *sync* renders and sends on Cyrus's thread "
             "(`event_delivery: sync`); *send* is the floor: every parameter gathered and every event built, "
             "then one `send()` per event of a datagram prepared in advance, on Cyrus's thread, no JSON; *none* "
             "builds the events and drops them. Overhead per message = CPU µs of the mode minus off within the "
             f"process, chunk by chunk (CPU read {rc.SETTLE * 1000:.0f} ms after each chunk); per round the "
             "median of its chunks; shown: the median of the rounds (min–max), then the mean ± standard "
             "error over all chunks. Ratios per round, to stock's. The "
             "patched process's off mode runs with the sender thread started (its mere existence is in "
             "neither side; `threadtax.py`). Everything a sandbox starts runs on Cyrus's core, the listener "
             "too" + ("; the rounds alternate with sandboxes whose listener is moved to the client's core"
                      if len(places) > 1 else "") + ".\n",
             "| event overhead per message | stock | queued | sync | send (floor) | none "
             "| queued / stock | sync / stock | send / stock | none / stock |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    # Built and dropped is the least of the patched modes' costs.
    none = {}
    for (work, name), (p, where) in ((w, p) for w in WORKS for p in places):
        s = med(p, work, "stock", "default")
        m = {k: med(p, work, "patched", k) for k in kinds}
        none[f"built and dropped, {name}, {where}"] = statistics.median(m["none"])
        lines.append(f"| {name}, {where} | {rc.spread(s, '{:.1f}')}; "
                     f"{rc.stat(pooled(p, work, 'stock', 'default'))} | "
                     + " | ".join(f"{rc.spread(m[k], '{:.1f}')}; {rc.stat(pooled(p, work, 'patched', k))}"
                                  for k in kinds) + " | "
                     + " | ".join(f"**{rc.spread([a / b for a, b in zip(m[k], s)], '{:.2f}')}**" for k in kinds)
                     + " |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + rc.impossible(none))
    print("floor: results in", path)


if __name__ == "__main__":
    main()
