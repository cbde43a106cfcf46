"""Real Cyrus, side by side: the stock 3.6.1 build and the patched one (same
source, same configure flags), each in a sandbox of cyrus-patch/run-sandbox.sh.

For each build and each event profile (off, default, all), interleaved:
LMTP delivery of N messages on one connection, then N single-message
`UID STORE n +FLAGS (\\Flagged)`. Wall time, the serving process's CPU time
(utime+stime from /proc, all its threads) and its peak RSS (VmHWM); the event
overhead per message is (events on - events off) / N, within each round.
With two or more cores, Cyrus runs on the last core and this client on the
first, so that the client does not steal the server's CPU; the sandboxes live
on a tmpfs (/dev/shm) so that fsync noise does not drown the events' cost.

usage: realcyrus.py RESULTS_MD [N] [ROUNDS]
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "cyrus-patch", "e2e"))
from e2elib import Sandbox, Session, message  # noqa: E402

RUNNER = os.path.join(REPO, "cyrus-patch", "run-sandbox.sh")
GOLDEN = os.path.join(REPO, "tests", "e2e", "golden")
BUILDS = {"stock": os.path.join(REPO, "build", "cyrus", "stock"),
          "patched": os.path.join(REPO, "build", "cyrus", "patched")}
TICK = os.sysconf("SC_CLK_TCK")


def profile_off(tmp):
    """The default profile without event_notifier: events off."""
    d = os.path.join(tmp, "off")
    os.makedirs(d, exist_ok=True)
    src = os.path.join(GOLDEN, "stock-3.6.1-default")
    with open(os.path.join(src, "imapd.conf")) as f:
        conf = [l for l in f if not l.startswith("event_notifier")]
    with open(os.path.join(d, "imapd.conf"), "w") as f:
        f.writelines(conf)
    with open(os.path.join(src, "cyrus.conf")) as f, open(os.path.join(d, "cyrus.conf"), "w") as g:
        g.write(f.read())
    return d


def children(master, name):
    out = subprocess.run(["pgrep", "-P", str(master), "-x", name], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


CORES = os.cpu_count() or 1
# Cyrus fsyncs every delivery: on a tmpfs those cost nothing, and the disk's
# noise no longer drowns the CPU time of the events (which touch no disk).
if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    os.environ.setdefault("SANDBOX_BASE", "/dev/shm")
SERVER_CPU = [] if CORES < 2 else ["taskset", "-c", str(CORES - 1)]


def run_one(build, profile, n):
    s = subprocess.run(SERVER_CPU + [RUNNER, "up", BUILDS[build], profile], capture_output=True, text=True,
                       check=True)
    path = s.stdout.strip().splitlines()[-1]
    try:
        sb = Sandbox(path)
        master = int(open(os.path.join(path, "rig", "master.pid")).read())
        admin = Session(sb, "admin")
        admin.do("create", lambda m: m.create("user/alice"))
        admin.logout()

        import smtplib
        raw = message(1, "bench", msgid=False)
        t0 = time.monotonic()
        lm = smtplib.LMTP(sb.lmtp, local_hostname="bench.test")
        for _ in range(n):
            lm.sendmail("bench@example.org", ["alice"], raw)
        lm.quit()
        lmtp_wall = time.monotonic() - t0
        lmtpd = children(master, "lmtpd")
        lmtp_cpu = sum(cpu_s(p) for p in lmtpd)
        lmtp_rss = max((hwm_kb(p) for p in lmtpd), default=0)

        alice = Session(sb, "alice")
        alice.select("INBOX")
        before = {p: cpu_s(p) for p in children(master, "imapd")}
        t0 = time.monotonic()
        for uid in range(1, n + 1):
            alice.m.uid("STORE", str(uid), "+FLAGS", "(\\Flagged)")
        store_wall = time.monotonic() - t0
        imapd = children(master, "imapd")
        store_cpu = sum(cpu_s(p) - before.get(p, 0.0) for p in imapd)
        imap_rss = max((hwm_kb(p) for p in imapd), default=0)
        alice.logout()
        sb.wait_quiet(quiet=0.5, timeout=30)
        events = sb.count()
        return dict(lmtp_wall=lmtp_wall, lmtp_cpu=lmtp_cpu, lmtp_rss=lmtp_rss,
                    store_wall=store_wall, store_cpu=store_cpu, imap_rss=imap_rss, events=events)
    finally:
        subprocess.run([RUNNER, "down", path], capture_output=True)


def main():
    if SERVER_CPU:
        os.sched_setaffinity(0, set(range(CORES - 1)))
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    tmp = tempfile.mkdtemp(prefix="cmev-realcyrus-")
    profiles = {"off": profile_off(tmp),
                "default": os.path.join(GOLDEN, "stock-3.6.1-default"),
                "all": os.path.join(GOLDEN, "stock-3.6.1-all")}
    res = {}
    for r in range(rounds):
        for prof in profiles:
            for build in ("stock", "patched") if r % 2 == 0 else ("patched", "stock"):
                m = run_one(build, profiles[prof], n)
                print(f"round {r + 1} {build:7} {prof:7} lmtp {m['lmtp_wall']:.2f}s/{m['lmtp_cpu']:.2f}s cpu, "
                      f"store {m['store_wall']:.2f}s/{m['store_cpu']:.2f}s cpu, events {m['events']}", flush=True)
                res.setdefault((build, prof), []).append(m)

    def med(build, prof, key):
        return statistics.median(m[key] for m in res[(build, prof)])

    def spread(values, fmt="{:.2f}"):
        return (fmt.format(statistics.median(values)) + " (" + fmt.format(min(values)) + "–" +
                fmt.format(max(values)) + ")")

    def per_round(build, prof, key):
        return [m[key] for m in res[(build, prof)]]

    lines = [f"### Real Cyrus: {n} LMTP deliveries and {n} single-message STOREs, {rounds} rounds\n",
             f"Median (min–max) over the rounds; CPU is the serving process's (all threads). "
             f"{'Cyrus pinned to one core, the client to the others. ' if SERVER_CPU else ''}"
             "The ratio is the median of each round's patched/stock (same round, same conditions).\n",
             "| case | stock wall (s) | stock CPU (s) | patched wall (s) | patched CPU (s) | patched / stock CPU |",
             "|---|---|---|---|---|---|"]
    for work, wall, cpu in (("LMTP", "lmtp_wall", "lmtp_cpu"), ("STORE", "store_wall", "store_cpu")):
        for prof in profiles:
            ratios = [p / s_ for p, s_ in zip(per_round("patched", prof, cpu), per_round("stock", prof, cpu)) if s_]
            lines.append(f"| {work}, events {prof} | {spread(per_round('stock', prof, wall))} | "
                         f"{spread(per_round('stock', prof, cpu))} | {spread(per_round('patched', prof, wall))} | "
                         f"{spread(per_round('patched', prof, cpu))} | **{spread(ratios, '{:.3f}')}** |")
    lines += ["", "| event overhead per message (CPU, events on − off, within a round) | stock µs | patched µs | "
              "patched / stock |", "|---|---|---|---|"]
    for work, cpu in (("LMTP", "lmtp_cpu"), ("STORE", "store_cpu")):
        for prof in ("default", "all"):
            over = {b: [(on - off) / n * 1e6 for on, off in zip(per_round(b, prof, cpu), per_round(b, "off", cpu))]
                    for b in ("stock", "patched")}
            so, po = statistics.median(over["stock"]), statistics.median(over["patched"])
            lines.append(f"| {work}, {prof} | {spread(over['stock'], '{:.0f}')} | {spread(over['patched'], '{:.0f}')} | "
                         f"**{po / so if so > 0 else float('nan'):.2f}** |")
    lines += ["", "| peak RSS (VmHWM, KiB) | stock | patched |", "|---|---|---|"]
    for prof in profiles:
        lines.append(f"| lmtpd / imapd, events {prof} | {med('stock', prof, 'lmtp_rss'):.0f} / "
                     f"{med('stock', prof, 'imap_rss'):.0f} | {med('patched', prof, 'lmtp_rss'):.0f} / "
                     f"{med('patched', prof, 'imap_rss'):.0f} |")
    lines.append("")
    lines.append("Events received per run: " + ", ".join(
        f"{b}/{p} {med(b, p, 'events'):.0f}" for (b, p) in sorted(res)))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("realcyrus: results in", out)


if __name__ == "__main__":
    main()
