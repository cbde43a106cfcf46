"""Real Cyrus at a low command rate: single-message STOREs 30 ms apart, as
an IMAP client that is not in a hurry sends them. realcyrus.py sends its
commands back to back, so the sender thread wakes once per nap for many
events; here each command's events find it asleep, and the CPU it spends
to wake, send and sleep again falls on one command.

Six sandboxes (stock and patched × events off, default, all), the commands
interleaved one by one. Per command: the serving process's CPU over the
command and the pause after it (so the sender's work for the command is
inside), events on minus off; median, then mean ± standard error.

usage: lowrate.py RESULTS_MD [N] [GAP_MS]
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import realcyrus as rc  # noqa: E402
from e2elib import message  # noqa: E402


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 120
    gap = (float(sys.argv[3]) if len(sys.argv) > 3 else 30) / 1000
    with rc.started("cmev-lowrate-", rc.six) as (_, targets):
        raw = message(1, "bench", msgid=False)
        for x in targets:
            x.deliver(n + 1, raw)
            x.store(1)
            x.runs["store"].clear()
        for c in range(n):
            k = c % len(targets)
            for x in targets[k:] + targets[:k]:
                x.timed("store", x.imapd, x.store_one, settle=gap)
        t = {(x.build, x.profile): x for x in targets}

        def us(build, prof, i):
            return t[(build, prof)].per_message("store", i)

        lines = [f"### Real Cyrus at a low rate: {n} single-message STOREs, one every {gap * 1000:.0f} ms\n",
                 "Six sandboxes side by side, the commands interleaved one by one. Per command: the serving "
                 "process's CPU (all threads) over the command and the pause after it, so that the sender's "
                 "wake-up, send and sleep for the command are inside; overhead = events on − off, median "
                 "(mean ± standard error).\n",
                 "| events | stock CPU µs | patched CPU µs | stock overhead | patched overhead "
                 "| of which patched's sender | patched / stock (medians) |",
                 "|---|---|---|---|---|---|---|"]
        for prof in ("default", "all"):
            over = {b: t[(b, prof)].overhead(t[(b, "off")], "store") for b in rc.BUILDS}
            so, po = statistics.median(over["stock"]), statistics.median(over["patched"])
            lines.append(f"| {prof} | {statistics.median(us('stock', prof, 1)):.0f} | "
                         f"{statistics.median(us('patched', prof, 1)):.0f} | {rc.stat(over['stock'])} | "
                         f"{rc.stat(over['patched'])} | {rc.stat(us('patched', prof, 2))} | "
                         f"**{po / so if so > 0 else float('nan'):.2f}** |")
        with open(out, "w") as f:
            f.write("\n".join(lines) + "\n")
        print("lowrate: results in", out)


if __name__ == "__main__":
    main()
