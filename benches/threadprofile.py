"""Where a second thread's cost lands in Cyrus's own thread: perf profiles
of two stock lmtpd processes with events off, one alone and one with an idle
thread that has a file table of its own (benches/idlethread.c, as in
threadtax.py), while both deliver the same messages in interleaved chunks.

Per symbol: µs per delivery in each, and the difference. Most symbols move
within the noise of two processes; the ones that only a multi-threaded
process runs (glibc's cancellation-state updates around every cancellable
call: open, close, read, write, fcntl F_SETLKW, ...) show what the thread's
mere existence adds, whatever the thread does. A profile, not a benchmark.

usage: threadprofile.py IDLETHREAD_SO [N]   (needs perf, root)
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import threadtax  # noqa: E402
from e2elib import message  # noqa: E402

# Run only once a process has a second thread (glibc 2.36, x86-64).
MT_ONLY = ("__pthread_enable_asynccancel", "__pthread_disable_asynccancel",
           "__GI___pthread_enable_asynccancel", "__GI___pthread_disable_asynccancel")
CHUNKS = 50


def symbols(data):
    """Share of the samples per symbol, in percent."""
    out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--sort", "sym", "-q", "--percent-limit", "0"],
                         capture_output=True, text=True).stdout
    shares = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[0].endswith("%"):
            shares[" ".join(parts[2:])] = float(parts[0][:-1])
    return shares


def main():
    preload = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    with threadtax.sandboxes(("none", "own"), preload, "cmev-threadprofile-") as (tmp, targets):
        raw = message(1, "bench", msgid=False)
        for t in targets:
            t.deliver(50, raw)
        perfs = [subprocess.Popen(["perf", "record", "-q", "-F", "4000", "-o", os.path.join(tmp, f"{i}.data"),
                                   "-p", str(t.lmtpd)], stderr=subprocess.DEVNULL)
                 for i, t in enumerate(targets)]
        time.sleep(0.5)
        for c in range(CHUNKS):
            for t in (targets if c % 2 == 0 else targets[::-1]):
                t.deliver(n // CHUNKS, raw)
        for p in perfs:
            p.send_signal(signal.SIGINT)
        for p in perfs:
            p.wait()
        per = [sum(r[1] for r in t.runs["lmtp"][1:]) * 1e6 / (n // CHUNKS * CHUNKS) for t in targets]
        shares = [symbols(os.path.join(tmp, f"{i}.data")) for i in range(2)]

    def us(i, sym):
        return shares[i].get(sym, 0.0) * per[i] / 100

    print(f"stock lmtpd, events off, {n} deliveries: {per[0]:.0f} µs CPU per delivery alone, "
          f"{per[1]:.0f} with an idle thread (own file table)")
    mt = [s for s in shares[1] if s in MT_ONLY]
    print(f"  symbols only a multi-threaded process runs: {sum(us(1, s) for s in mt):.1f} µs per delivery "
          f"({', '.join(mt) or 'none sampled'})")
    rows = sorted(set(shares[0]) | set(shares[1]), key=lambda s: us(1, s) - us(0, s))
    print("  largest differences (with thread − alone, µs per delivery; most are noise):")
    for s in rows[:8] + rows[-12:]:
        print(f"    {us(1, s) - us(0, s):+6.2f}  {us(0, s):6.2f} → {us(1, s):6.2f}  {s}")


if __name__ == "__main__":
    main()
