"""What a second thread that does nothing costs a real Cyrus process.

Four sandboxes of the stock 3.6.1 build with events off run side by side:
no extra thread, the same again (the control: what two identical sandboxes
differ by here), an idle thread sharing the file table (any pthread), and an
idle thread with a file table of its own (as the library's sender). The
thread comes from benches/idlethread.c, preloaded into all four, told by
CMEV_IDLE_THREAD in the last two only: the preload alone moved an lmtpd's
CPU by +13 µs per delivery (a process laid out differently in memory), as
much as the thread with its own table, so a baseline without it credited
the thread with the preload's share. LMTP
deliveries, then single-message STOREs, go in interleaved chunks, rotated;
per chunk the serving process's CPU time (schedstat, ns). Reported per
message: CPU with no thread, and each variant's difference to it within the
chunk (median, then mean ± standard error).

usage: threadtax.py RESULTS_MD IDLETHREAD_SO [N] [CHUNKS]
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import realcyrus as rc  # noqa: E402

VARIANTS = (("none", "no other thread"), ("none", "the same again (control)"),
            ("shared", "an idle thread sharing the file table"),
            ("own", "an idle thread with a file table of its own"))


def sandboxes(modes, preload, prefix):
    """One stock sandbox with events off per mode (see `rc.started`)."""
    def make(tmp):
        conf = rc.profile_off(tmp)
        for mode in modes:
            env = {"LD_PRELOAD": preload} | ({} if mode == "none" else {"CMEV_IDLE_THREAD": mode})
            yield rc.Target("stock", "off", conf, env)
    return rc.started(prefix, make)


def threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def main():
    out, preload = sys.argv[1], os.path.abspath(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 4000
    chunks = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    per = n // chunks
    with sandboxes([mode for mode, _ in VARIANTS], preload, "cmev-threadtax-") as (_, targets):
        rc.interleave(targets, n, chunks, "threadtax")
        seen = [(threads(x.lmtpd), threads(x.imapd)) for x in targets]
        want = [(1, 1), (1, 1), (2, 2), (2, 2)]
        if seen != want:
            sys.exit(f"threadtax: threads per lmtpd/imapd {seen}, expected {want} (preload not effective?)")
        lines = [f"### What an idle second thread costs real Cyrus: {n} LMTP deliveries and {n} STOREs, "
                 f"in {chunks} interleaved chunks\n",
                 "Stock 3.6.1, events off, in four sandboxes side by side; the thread is preloaded into "
                 "lmtpd and imapd (benches/idlethread.c, in all four, started in the last two) and never "
                 "runs. CPU µs per message of the serving process; the differences are within each chunk, median (mean ± standard error).\n",
                 "| work | CPU, " + VARIANTS[0][1] + " | " + " | ".join("+ " + v[1] for v in VARIANTS[1:]) + " |",
                 "|---|---|---|---|---|"]
        for work, name in (("lmtp", "LMTP delivery"), ("store", "single-message STORE")):
            cpu = [[r[1] * 1e6 / per for r in x.runs[work]] for x in targets]
            cells = [f"{statistics.median(cpu[0]):.0f}"]
            for v in range(1, len(VARIANTS)):
                cells.append(rc.stat([b - a for a, b in zip(cpu[0], cpu[v])], sign="+"))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        with open(out, "w") as f:
            f.write("\n".join(lines) + "\n")
        print("threadtax: results in", out)


if __name__ == "__main__":
    main()
