"""Real Cyrus, side by side: the stock build of one Cyrus series (3.6.1 by
default, --series 3.10 for 3.10.2, 3.12 for 3.12.4) and the patched one (same source, same
configure flags), each in a sandbox of cyrus-patch/run-sandbox.sh, with that
series' golden configurations.

Six sandboxes run at once, one per build and event profile (off, default,
all). Their work is interleaved in chunks: N LMTP deliveries on one
connection per sandbox, CHUNKS chunks of N/CHUNKS messages, each chunk going
to the six in turn (rotated), then N single-message `UID STORE n +FLAGS
(\\Flagged)` the same way. Per chunk and sandbox: wall time and the serving
process's CPU time (all its threads, from /proc/PID/task/*/schedstat, in ns).
The CPU is read 40 ms after the chunk (SETTLE), by when the patched
build's sender has sent the chunk's last events.
The event overhead is (events on - events off) within a chunk, so that the
machine's slow drifts cancel; figures are medians over the chunks (min-max).
With two or more cores Cyrus runs on the last core and this client on the
others; the sandboxes live on a tmpfs (/dev/shm) so that fsync noise does not
drown the events' cost.

The whole comparison runs ROUNDS times, each with six new sandboxes: two
processes alike in every way differ by a few µs per message (placement in
memory, in the caches), a bias interleaving cannot cancel. The overhead is
given per round and as the median of the rounds with their min-max.

usage: realcyrus.py [--series 3.6|3.10|3.12] RESULTS_MD [N] [CHUNKS] [ROUNDS]
"""
import contextlib
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
from e2elib import SERIES, Sandbox, Session, build_prefix, message, series_name  # noqa: E402

RUNNER = os.path.join(REPO, "cyrus-patch", "run-sandbox.sh")
GOLDEN = os.path.join(REPO, "tests", "golden")
# Per series (tests/e2e/e2elib.py's SERIES table): where `make cyrus[-stock] CYRUS=S`
# installs it, the version built, and the version its golden capture (whose
# configurations are used) was taken from.
BUILDS = {}
VERSION = GOLDEN_VERSION = None


def use_series(series):
    """Point BUILDS and the profiles at one Cyrus series' builds and goldens
    ('3.12' or '3.12.4'; SystemExit naming the series there are otherwise)."""
    global VERSION, GOLDEN_VERSION
    try:
        s = series_name(series)
    except ValueError as e:
        sys.exit(f"{os.path.basename(sys.argv[0])}: {e}")
    VERSION, GOLDEN_VERSION = SERIES[s]["version"], SERIES[s]["golden"]
    for build in ("stock", "patched"):
        BUILDS[build] = build_prefix(s, build)


use_series("3.6")
PROFILES = ("off", "default", "all")

CORES = os.cpu_count() or 1
# Cyrus fsyncs every delivery: on a tmpfs those cost nothing, and the disk's
# noise no longer drowns the CPU time of the events (which touch no disk).
if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    os.environ.setdefault("SANDBOX_BASE", "/dev/shm")
SERVER_CPU = [] if CORES < 2 else ["taskset", "-c", str(CORES - 1)]
# Two of the sender's 10 ms naps, and room for the send between them.
SETTLE = 0.04


def profile_off(tmp):
    """The default profile without event_notifier: events off."""
    d = os.path.join(tmp, "off")
    os.makedirs(d, exist_ok=True)
    src = os.path.join(GOLDEN, f"stock-{GOLDEN_VERSION}-default")
    with open(os.path.join(src, "imapd.conf")) as f:
        conf = [l for l in f if not l.startswith("event_notifier")]
    with open(os.path.join(d, "imapd.conf"), "w") as f:
        f.writelines(conf)
    with open(os.path.join(src, "cyrus.conf")) as f, open(os.path.join(d, "cyrus.conf"), "w") as g:
        g.write(f.read())
    return d


def discard(path):
    """Stop a sandbox and delete it: on the tmpfs it is memory."""
    subprocess.run([RUNNER, "down", path], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def profiles(tmp):
    """The configuration directory of each event profile (off lives in tmp)."""
    return {"off": profile_off(tmp),
            "default": os.path.join(GOLDEN, f"stock-{GOLDEN_VERSION}-default"),
            "all": os.path.join(GOLDEN, f"stock-{GOLDEN_VERSION}-all")}


@contextlib.contextmanager
def started(prefix, make):
    """This client kept off Cyrus's core, a scratch directory, and the
    Targets that make(tmp) yields, started one by one; on leaving, every one
    started is stopped and deleted, and the directory too."""
    if SERVER_CPU:
        os.sched_setaffinity(0, set(range(CORES - 1)))
    tmp = tempfile.mkdtemp(prefix=prefix)
    targets = []
    try:
        for t in make(tmp):
            targets.append(t)
        yield tmp, targets
    finally:
        for x in targets:
            discard(x.path)
        shutil.rmtree(tmp, ignore_errors=True)


def six(tmp):
    """Stock and patched, each with events off, default and all."""
    confs = profiles(tmp)
    for build in BUILDS:
        for prof in PROFILES:
            yield Target(build, prof, confs[prof])


def children(master, name):
    out = subprocess.run(["pgrep", "-P", str(master), "-x", name], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def cpu_ns(pid):
    """On-CPU time of all the process's threads and of its event sender
    thread (the library's), in ns."""
    total = sender = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() == "mboxevent-send":
                    sender += ns
        except FileNotFoundError:
            continue
        total += ns
    return total, sender


def serving(master, name, probe):
    """The child of master called name that serves our connection: the one
    whose CPU time grows while probe() talks to it (master may keep spare
    workers, and an idle one from an earlier session)."""
    pids = children(master, name)
    before = {p: cpu_ns(p)[0] for p in pids}
    for _ in range(20):
        probe()
    return max(pids, key=lambda p: cpu_ns(p)[0] - before[p])


MEMORY = {"peak RSS": ("status", "VmHWM"), "private memory at the end": ("smaps_rollup", "Private_Dirty")}


def proc_kb(pid, name, key):
    """A KiB figure of /proc/PID/NAME (status: VmHWM, the peak RSS;
    smaps_rollup: Private_Dirty, what the process holds that no other
    process shares, unlike the libraries' code in its RSS)."""
    with open(f"/proc/{pid}/{name}") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Target:
    """One running sandbox, its LMTP connection and (later) its IMAP session.
    env: variables added to the sandbox's environment (a preload, say);
    extra: a file of imapd.conf lines added to the profile's."""

    def __init__(self, build, profile, conf_dir, env=None, extra=None):
        self.build, self.profile = build, profile
        s = subprocess.run(SERVER_CPU + [RUNNER, "up", BUILDS[build], conf_dir] + ([extra] if extra else []),
                           capture_output=True, text=True, check=True, env={**os.environ, **(env or {})})
        self.path = s.stdout.strip().splitlines()[-1]
        try:
            self.connect()
        except BaseException:
            discard(self.path)
            raise
        self.imap = None
        self.uid = 0
        self.runs = {"lmtp": [], "store": []}

    def connect(self):
        self.sb = Sandbox(self.path)
        self.master = int(open(os.path.join(self.path, "rig", "master.pid")).read())
        admin = Session(self.sb, "admin")
        admin.do("create", lambda m: m.create("user/alice"))
        admin.logout()
        self.lmtp = smtplib.LMTP(self.sb.lmtp, local_hostname="bench.test")
        self.lmtp.ehlo_or_helo_if_needed()
        self.lmtpd = serving(self.master, "lmtpd", self.lmtp.noop)

    def per_message(self, work, i, per=1):
        """Chunk by chunk, in µs per message: i = 0 wall time, 1 the process's
        CPU, 2 its sender thread's CPU."""
        return [r[i] * 1e6 / per for r in self.runs[work]]

    def overhead(self, off, work, per=1):
        """CPU µs per message above `off` (events off), chunk by chunk."""
        return [on - o for on, o in zip(self.per_message(work, 1, per), off.per_message(work, 1, per))]

    def timed(self, work, pid, fn, settle=None):
        """Run fn, record its wall time and the process's CPU up to `settle`
        seconds after it (SETTLE by default)."""
        c0, t0 = cpu_ns(pid), time.monotonic()
        fn()
        wall = time.monotonic() - t0
        # The chunk's last events are sent after it: the sender naps 10 ms
        # while events come, sends what the nap found, then naps once more
        # before it sleeps. That work is the chunk's, so its CPU is read
        # only once the sender is done (stock has nothing left to do).
        time.sleep(SETTLE if settle is None else settle)
        c1 = cpu_ns(pid)
        self.runs[work].append((wall, (c1[0] - c0[0]) / 1e9, (c1[1] - c0[1]) / 1e9))

    def deliver(self, n, raw):
        def go():
            for _ in range(n):
                self.lmtp.sendmail("bench@example.org", ["alice"], raw)
        self.timed("lmtp", self.lmtpd, go)

    def store(self, n):
        if self.imap is None:
            self.imap = Session(self.sb, "alice")
            self.imap.select("INBOX")
            self.imapd = serving(self.master, "imapd", self.imap.m.noop)

        def go():
            for _ in range(n):
                self.store_one()
        self.timed("store", self.imapd, go)

    def store_one(self):
        self.uid += 1
        self.imap.m.uid("STORE", str(self.uid), "+FLAGS", "(\\Flagged)")

    def finish(self):
        self.memory = {m: (proc_kb(self.lmtpd, *MEMORY[m]), proc_kb(self.imapd, *MEMORY[m])) for m in MEMORY}
        self.lmtp.quit()
        self.imap.logout()
        self.sb.wait_quiet(quiet=0.5, timeout=30)
        self.events = self.sb.count()


def stat(values):
    """Median, then mean ± standard error, in µs."""
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return f"{statistics.median(values):.1f} ({statistics.mean(values):.1f} ± {se:.1f})"


def impossible(costs):
    """A warning for costs measured below zero (name -> median µs), which no
    real cost is: the host's noise then exceeds what is compared, and every
    overhead taken against the same events-off runs is in doubt; "" when
    there are none."""
    below = [f"{name} {v:.1f} µs" for name, v in costs.items() if v < 0]
    if not below:
        return ""
    return ("\n**Not usable on this run's host:** costs measured below zero (" + ", ".join(below)
            + "): the host's noise exceeds the quantities compared, and this table's overheads and ratios "
            "are not usable.\n")


def spread(values, fmt):
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def report(rounds, n, chunks):
    """rounds: one list of the six Targets per round, each round with
    sandboxes (and processes) of its own."""
    per = n // chunks
    ts = [{(x.build, x.profile): x for x in targets} for targets in rounds]

    def pooled(build, prof, work, i):
        return [v for t in ts for v in t[(build, prof)].per_message(work, i, per)]

    lines = [f"### Real Cyrus {VERSION}: {n} LMTP deliveries and {n} single-message STOREs, in {chunks} interleaved chunks, "
             f"{len(rounds)} rounds\n",
             "Six sandboxes (stock and patched × events off, default, all) run side by side; each chunk of "
             f"{per} messages goes to the six in turn. Each round starts six new sandboxes: two processes "
             "alike in every way differ by a few µs per message here, which interleaving cannot cancel and "
             "fresh processes redraw. Per message: median over the chunks of all rounds (min–max); CPU is "
             f"the serving process's, all its threads, read {SETTLE * 1000:.0f} ms after each chunk, once the "
             "sender has sent the chunk's last events. "
             f"{'Cyrus pinned to one core, the client to the others. ' if SERVER_CPU else ''}"
             "The ratio is the median of each chunk's patched/stock.\n",
             "| case | stock wall µs | stock CPU µs | patched wall µs | patched CPU µs | patched / stock CPU |",
             "|---|---|---|---|---|---|"]
    for work, name in (("lmtp", "LMTP"), ("store", "STORE")):
        for prof in PROFILES:
            ratios = [p / s for p, s in zip(pooled("patched", prof, work, 1), pooled("stock", prof, work, 1))]
            lines.append(f"| {name}, events {prof} | {spread(pooled('stock', prof, work, 0), '{:.0f}')} | "
                         f"{spread(pooled('stock', prof, work, 1), '{:.0f}')} | "
                         f"{spread(pooled('patched', prof, work, 0), '{:.0f}')} | "
                         f"{spread(pooled('patched', prof, work, 1), '{:.0f}')} | **{spread(ratios, '{:.3f}')}** |")
    lines += ["", "Event overhead per message: CPU µs with events on minus off, within each chunk. Per round the "
              "median over its chunks; shown: the median of the rounds (min–max of the rounds), then mean ± "
              "standard error over all chunks. The patched build's sender thread (off the caller's path, but "
              "in the process's CPU) is shown apart too. The ratio is each round's patched/stock.\n",
              "| event overhead per message | stock | patched | of which patched's sender thread | "
              "patched / stock |", "|---|---|---|---|---|"]

    for work, name in (("lmtp", "LMTP"), ("store", "STORE")):
        for prof in ("default", "all"):
            over = {b: [t[(b, prof)].overhead(t[(b, "off")], work, per) for t in ts] for b in BUILDS}
            med = {b: [statistics.median(r) for r in over[b]] for b in BUILDS}
            ratios = [po / so if so > 0 else float("nan") for po, so in zip(med["patched"], med["stock"])]
            every = {b: [v for r in over[b] for v in r] for b in BUILDS}
            sender = [statistics.median(t[("patched", prof)].per_message(work, 2, per)) for t in ts]
            lines.append(f"| {name}, {prof} | {spread(med['stock'], '{:.1f}')}; {stat(every['stock'])} | "
                         f"{spread(med['patched'], '{:.1f}')}; {stat(every['patched'])} | {spread(sender, '{:.1f}')} | "
                         f"**{spread(ratios, '{:.2f}')}** |")
    for m, (name, key) in MEMORY.items():
        lines += ["", f"| {m} ({name} {key}, KiB), median of the rounds | stock | patched |", "|---|---|---|"]
        for prof in PROFILES:
            kb = {b: [statistics.median(t[(b, prof)].memory[m][i] for t in ts) for i in (0, 1)] for b in BUILDS}
            lines.append(f"| lmtpd / imapd, events {prof} | {kb['stock'][0]:.0f} / {kb['stock'][1]:.0f}"
                         f" | {kb['patched'][0]:.0f} / {kb['patched'][1]:.0f} |")
    lines += ["", "Events received, per round: " + ", ".join(
        f"{x.build}/{x.profile} {'/'.join(str(t[(x.build, x.profile)].events) for t in ts)}" for x in rounds[0])]
    return "\n".join(lines) + "\n"


def rotated(items, c):
    """items in turn for round c, starting with the c-th: each goes first
    as often as the others."""
    k = c % len(items)
    return items[k:] + items[:k]


def interleave(targets, n, chunks, label):
    """n LMTP deliveries and then n single-message STOREs to each target, in
    chunks of n/chunks, each chunk going to the targets in turn, rotated."""
    raw = message(1, "bench", msgid=False)
    for work in ("lmtp", "store"):
        for c in range(chunks):
            for x in rotated(targets, c):
                x.deliver(n // chunks, raw) if work == "lmtp" else x.store(n // chunks)
        print(f"{label}, {work} done", flush=True)


def run_round(n, chunks, label):
    """Six new sandboxes, their chunks interleaved; returns the finished Targets."""
    with started("cmev-realcyrus-", six) as (_, targets):
        interleave(targets, n, chunks, f"realcyrus: {label}")
        for x in targets:
            x.finish()
        return targets


def take_series(argv, default="3.6"):
    """A leading `--series S` (else `default`), shared by the benchmarks that run
    real Cyrus: points BUILDS and the profiles at that series; returns its name
    and the other arguments."""
    series = default
    if argv[:1] == ["--series"]:
        series, argv = argv[1], argv[2:]
    use_series(series)
    return series_name(series), argv


def parse_args(argv):
    """[--series S] RESULTS_MD [N] [CHUNKS] [ROUNDS], shared with relaycyrus.py;
    points BUILDS at the series."""
    _, argv = take_series(argv)
    return (argv[0], int(argv[1]) if len(argv) > 1 else 2000, int(argv[2]) if len(argv) > 2 else 100,
            int(argv[3]) if len(argv) > 3 else 3)


def main():
    out, n, chunks, nrounds = parse_args(sys.argv[1:])
    rounds = [run_round(n, chunks, f"round {r + 1}/{nrounds}") for r in range(nrounds)]
    with open(out, "w") as f:
        f.write(report(rounds, n, chunks))
    with open(os.path.splitext(out)[0] + ".csv", "w") as f:
        f.write("round,build,profile,work,chunk,wall_s,cpu_s,sender_cpu_s\n")
        for r, targets in enumerate(rounds):
            for x in targets:
                for work, runs in x.runs.items():
                    f.writelines(f"{r},{x.build},{x.profile},{work},{i},{w:.6f},{c:.6f},{sc:.6f}\n"
                                 for i, (w, c, sc) in enumerate(runs))
    print("realcyrus: results in", out)


if __name__ == "__main__":
    main()
