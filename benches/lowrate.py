"""Real Cyrus at a low command rate: single-message STOREs 30 ms apart, as
an IMAP client that is not in a hurry sends them. realcyrus.py sends its
commands back to back, so the sender thread wakes once per nap for many
events; here each command's events find it asleep, and the CPU it spends
to wake, send and sleep again falls on one command.

Four sandboxes (stock and patched × events default, all), with
benches/onoff.c preloaded so that each process switches events off and on
command by command (two processes alike in every way differ by more than
a command's events cost); the commands go to the sandboxes in turn. Per
command: the serving process's CPU over the command and the pause after it
(so the sender's work for the command is inside); the overhead is each
command with events on minus the one with them off of the same turn, in
the same process; median, then mean ± standard error.

usage: lowrate.py RESULTS_MD ONOFF_SO [N] [GAP_MS]
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import realcyrus as rc  # noqa: E402
from e2elib import message  # noqa: E402

PROFILES = ("default", "all")


class Mode(rc.Target):
    """Events off or on in a sandbox's processes: its commands go to the
    sandbox with onoff.c's control byte set first, and are counted here."""

    def __init__(self, base, name, byte):
        self.base, self.build, self.profile, self.byte = base, base.build, name, byte
        self.runs = {"lmtp": [], "store": []}

    def chunk(self, work, go):
        with open(self.base.control, "r+b") as f:
            f.write(self.byte)
        go()
        self.runs[work].append(self.base.runs[work].pop())


def sandboxes(preload):
    """Stock and patched for each event profile, each told by a control file
    of its own (`Target.control`)."""
    def make(tmp):
        confs = rc.profiles(tmp)
        # Cyrus's processes run as cyrus and read the control files
        os.chmod(tmp, 0o755)
        for prof in PROFILES:
            for build in rc.BUILDS:
                control = os.path.join(tmp, f"control-{build}-{prof}")
                with open(control, "wb") as f:
                    f.write(b"r")
                os.chmod(control, 0o644)
                t = rc.Target(build, prof, confs[prof], {"LD_PRELOAD": preload, "CMEV_ONOFF": control})
                t.control = control
                yield t
    return rc.started("cmev-lowrate-", make)


def main():
    out, preload = sys.argv[1], os.path.abspath(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 120
    gap = (float(sys.argv[4]) if len(sys.argv) > 4 else 30) / 1000
    with sandboxes(preload) as (_, targets):
        raw = message(1, "bench", msgid=False)
        for x in targets:
            x.deliver(2 * n + 1, raw)
            x.store(1)
        # Off to every sandbox, then on to every sandbox: each process's
        # commands are then equally far apart. Sandbox by sandbox (off, on,
        # the next sandbox's off, ...) an off command came after the
        # process had been idle for the six others and an on command 30 ms
        # after its off one: on this host a STORE after the longer idle cost
        # more than a command's events, and events on came out cheaper than
        # off in both builds.
        modes = [Mode(x, name, byte) for name, byte in (("off", b"o"), ("on", b"r")) for x in targets]
        for _ in range(n):
            for m in modes:
                m.chunk("store", lambda m=m: m.base.timed("store", m.base.imapd, m.base.store_one, settle=gap))
        t = {(m.build, m.base.profile, m.profile): m for m in modes}

        def us(build, prof, i):
            return t[(build, prof, "on")].per_message("store", i)

        lines = [f"### Real Cyrus at a low rate: single-message STOREs, one every {gap * 1000:.0f} ms, "
                 f"{2 * n} per sandbox\n",
                 "Four sandboxes side by side (stock and patched × events default, all), the commands "
                 "going to them in turn; `benches/onoff.c` switches each process's events off and on command by "
                 "command. Per command: the serving process's CPU (all threads) over the command and the pause "
                 "after it, so that the sender's wake-up, send and sleep for the command are inside; overhead = "
                 "events on − off within the process, median (mean ± standard error).\n",
                 "| events | stock CPU µs | patched CPU µs | stock overhead | patched overhead "
                 "| of which patched's sender | patched / stock (medians) |",
                 "|---|---|---|---|---|---|---|"]
        costs = {}
        for prof in PROFILES:
            over = {b: t[(b, prof, "on")].overhead(t[(b, prof, "off")], "store") for b in rc.BUILDS}
            so, po = statistics.median(over["stock"]), statistics.median(over["patched"])
            costs.update({f"stock `{prof}` overhead": so, f"patched `{prof}` overhead": po})
            lines.append(f"| {prof} | {statistics.median(us('stock', prof, 1)):.0f} | "
                         f"{statistics.median(us('patched', prof, 1)):.0f} | {rc.stat(over['stock'])} | "
                         f"{rc.stat(over['patched'])} | {rc.stat(us('patched', prof, 2))} | "
                         f"**{po / so if so > 0 else float('nan'):.2f}** |")
        with open(out, "w") as f:
            f.write("\n".join(lines) + "\n" + rc.impossible(costs))
        print("lowrate: results in", out)


if __name__ == "__main__":
    main()
