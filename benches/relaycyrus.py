"""What `event_delivery: relay` saves in real Cyrus: the patched build of one
Cyrus series, its serving processes sending their events themselves (the
library's sender thread, to the sandbox's listener) beside the same build
leaving them in its spool ring for cmev-relay, which reads them while the
processes run and publishes them to a nats-server of this run's own.

Five sandboxes run at once, all patched: events off, `default` and `all`
sending, `default` and `all` with `event_delivery: relay` and a cmev-relay
each (pinned off Cyrus's core, with the client). Their work is interleaved in
chunks as realcyrus.py does (same Target, same chunks, same CPU reading of the
serving process, all its threads, SETTLE after each chunk); ROUNDS rounds of
new sandboxes. Reported per message: the serving process's CPU and its event
overhead (events on minus off, within each chunk), sending beside relay, with
relay/sending ratios; the sender thread's share; the relay's own CPU per
event (a process of its own, not Cyrus's); and the events each way received,
so that none went missing and a relay sandbox sent none.

usage: relaycyrus.py [--series 3.6|3.10] RESULTS_MD [N] [CHUNKS] [ROUNDS]
"""
import os
import statistics
import subprocess
import sys
import json
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import realcyrus as rc  # noqa: E402

RELAY_BIN = os.path.join(rc.REPO, "target", "release", "cmev-relay")
CLIENT_CPU = [] if rc.CORES < 2 else ["taskset", "-c", ",".join(str(c) for c in range(rc.CORES - 1))]
# (name, event profile, left to a relay)
CASES = (("off", "off", False), ("default", "default", False), ("default relay", "default", True),
         ("all", "all", False), ("all relay", "all", True))


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nats:
    """A nats-server with JetStream in a scratch directory, for the relays."""

    def __init__(self, tmp):
        self.port = free_port()
        conf = os.path.join(tmp, "nats.conf")
        with open(conf, "w") as f:
            f.write(f"listen: 127.0.0.1:{self.port}\njetstream {{ store_dir: \"{tmp}/js\" }}\n")
        self.proc = subprocess.Popen(CLIENT_CPU + ["nats-server", "-c", conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import socket
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not listen")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class RelayTarget(rc.Target):
    """A patched sandbox with event_delivery: relay, and its cmev-relay."""

    def __init__(self, name, conf_dir, tmp, nats):
        extra = os.path.join(tmp, f"{name.replace(' ', '-')}.conf")
        with open(extra, "w") as f:
            f.write("event_delivery: relay\n")
        super().__init__("patched", name, conf_dir, extra=extra)
        d = os.path.join(tmp, name.replace(" ", "-"))
        os.makedirs(d)
        self.stats_file = os.path.join(d, "stats.json")
        toml = os.path.join(d, "relay.toml")
        with open(toml, "w") as f:
            f.write(f'host = "bench"\nstats_file = "{self.stats_file}"\n[store]\ndir = "{d}/store"\n'
                    f'[input]\nspool_dir = "{self.path}/var/events"\n'
                    f'[nats]\nservers = ["nats://127.0.0.1:{nats.port}"]\n'
                    f'stream = "BENCH_{name.replace(" ", "_").upper()}"\n'
                    f'subject_prefix = "bench.{name.replace(" ", "_")}"\n')
        self.relay = subprocess.Popen(CLIENT_CPU + [RELAY_BIN, toml], stdout=subprocess.DEVNULL,
                                      stderr=open(os.path.join(d, "relay.log"), "w"))
        RELAYS.append(self.relay)
        self.relay_cpu0 = proc_cpu_s(self.relay.pid)

    def finish(self):
        super().finish()
        self.relayed = wait_received(self.stats_file)
        self.relay_cpu = proc_cpu_s(self.relay.pid) - self.relay_cpu0


# Every relay started, stopped at the end of its round whatever happens.
RELAYS = []


def proc_cpu_s(pid):
    """User and system CPU of a whole process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_stat(path, name):
    try:
        with open(path) as f:
            return json.load(f).get(name, 0)
    except (OSError, ValueError):
        return 0


def wait_received(path, quiet=1.0, timeout=30.0):
    """Wait until the relay's `received` has not grown for `quiet` seconds."""
    t0 = last = time.monotonic()
    n = read_stat(path, "received")
    while time.monotonic() - t0 < timeout:
        time.sleep(0.2)
        m = read_stat(path, "received")
        if m != n:
            n, last = m, time.monotonic()
        elif time.monotonic() - last >= quiet:
            break
    return n


def five(tmp, nats):
    confs = rc.profiles(tmp)
    for name, prof, relay in CASES:
        if relay:
            yield RelayTarget(name, confs[prof], tmp, nats)
        else:
            yield rc.Target("patched", prof, confs[prof])


def run_round(n, chunks, label):
    tmp = tempfile.mkdtemp(prefix="cmev-relaycyrus-nats-")
    nats = Nats(tmp)
    try:
        with rc.started("cmev-relaycyrus-", lambda t: five(t, nats)) as (_, targets):
            rc.interleave(targets, n, chunks, f"relaycyrus: {label}")
            for x in targets:
                x.finish()
            return targets
    finally:
        while RELAYS:
            r = RELAYS.pop()
            r.terminate()
            r.wait()
        nats.stop()
        subprocess.run(["rm", "-rf", tmp])


def report(rounds, n, chunks):
    per = n // chunks
    ts = [{x.profile: x for x in targets} for targets in rounds]

    def pooled(case, work, i):
        return [v for t in ts for v in t[case].per_message(work, i, per)]

    lines = [f"### Real Cyrus {rc.VERSION}: events sent by the process, or left to cmev-relay "
             f"(`event_delivery: relay`)\n",
             f"The patched build only, five sandboxes side by side: events off, `default` and `all` "
             f"sending (the library's sender thread, to the sandbox's listener), `default` and `all` "
             f"leaving their events in the spool ring for a cmev-relay each (its own process, pinned with "
             f"the client, publishing to a nats-server). {n} LMTP deliveries and {n} single-message STOREs "
             f"per sandbox in {chunks} interleaved chunks, {len(rounds)} rounds of new sandboxes. CPU is the "
             f"serving process's, all its threads, read {rc.SETTLE * 1000:.0f} ms after each chunk; per "
             "message, median over the chunks of all rounds (min–max). Ratios: each chunk's relay/sending.\n",
             "| case | sending CPU µs | relay CPU µs | relay / sending CPU | sending: sender thread µs |",
             "|---|---|---|---|---|"]
    for work, name in (("lmtp", "LMTP delivery"), ("store", "STORE")):
        for prof in ("default", "all"):
            send, relay = pooled(prof, work, 1), pooled(f"{prof} relay", work, 1)
            ratios = [r / s for r, s in zip(relay, send)]
            lines.append(f"| {name}, {prof} | {rc.spread(send, '{:.0f}')} | {rc.spread(relay, '{:.0f}')} | "
                         f"**{rc.spread(ratios, '{:.3f}')}** | {rc.spread(pooled(prof, work, 2), '{:.1f}')} |")
    lines += ["", "Event overhead per message (CPU with events on minus off, within each chunk): per round "
              "the median over its chunks; the median of the rounds (min–max of the rounds). The ratio is "
              "each round's relay/sending.\n",
              "| event overhead | sending µs | relay µs | relay / sending |", "|---|---|---|---|"]
    for work, name in (("lmtp", "LMTP delivery"), ("store", "STORE")):
        for prof in ("default", "all"):
            med = {c: [statistics.median(t[c].overhead(t["off"], work, per)) for t in ts]
                   for c in (prof, f"{prof} relay")}
            ratios = [r / s if s > 0 else float("nan") for r, s in zip(med[f"{prof} relay"], med[prof])]
            lines.append(f"| {name}, {prof} | {rc.spread(med[prof], '{:.1f}')} | "
                         f"{rc.spread(med[f'{prof} relay'], '{:.1f}')} | **{rc.spread(ratios, '{:.2f}')}** |")
    lines += ["", "| events, per round | sending: received by the listener | relay: received by the "
              "listener | relay: received by cmev-relay | cmev-relay CPU µs per event |", "|---|---|---|---|---|"]
    for prof in ("default", "all"):
        r = [t[f"{prof} relay"] for t in ts]
        lines.append(f"| {prof} | {'/'.join(str(t[prof].events) for t in ts)} | "
                     f"{'/'.join(str(x.events) for x in r)} | {'/'.join(str(x.relayed) for x in r)} | "
                     f"{'/'.join(f'{x.relay_cpu * 1e6 / max(x.relayed, 1):.1f}' for x in r)} |")
    return "\n".join(lines) + "\n"


def main():
    out, n, chunks, nrounds = rc.parse_args(sys.argv[1:])
    rounds = [run_round(n, chunks, f"round {r + 1}/{nrounds}") for r in range(nrounds)]
    with open(out, "w") as f:
        f.write(report(rounds, n, chunks))
    print("relaycyrus: results in", out)


if __name__ == "__main__":
    main()
