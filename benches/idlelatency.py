"""IMAP IDLE and NOTIFY latency on Cyrus 3.10.2 (or 3.12.4), stock beside patched.

tests/e2e/idle.py (a client in IDLE, or NOTIFY, told through idled of LMTP
deliveries and of another session's flag changes) runs on the stock and the
patched build in turn, with `event_notifier` unset (idled alone) and set
(notifyd's socket too), ROUNDS times, each run in a new sandbox; the rounds
alternate which build goes first. The samples of all rounds are pooled per
measurement: p50 and p99 in ms from the changing side's reply to the
client's untagged response, and patched minus stock (a difference, not a
ratio: stock tells idled before it replies, so the times are near or below
zero).

usage: idlelatency.py [--series 3.10|3.12] RESULTS_MD [N] [ROUNDS]

--series: the Cyrus series whose two builds run (default 3.10; 3.8 and later, where
idled is fed by mboxevent), with its golden `default` configuration.
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__))))
import realcyrus as rc  # noqa: E402
from e2elib import since  # noqa: E402  (realcyrus put tests/e2e on the path)

IDLE = os.path.join(rc.REPO, "tests", "e2e", "idle.py")


def pct(xs, p):
    xs = sorted(xs)
    return xs[max(0, min(len(xs) - 1, -(-p * len(xs) // 100) - 1))]


def run(build, notifier, n, out):
    """One idle.py run in a new sandbox; its results (raises if anything was missed)."""
    cmd = ["python3", IDLE, "--prefix", rc.BUILDS[build], "--profile", os.path.join(rc.GOLDEN, f"stock-{rc.GOLDEN_VERSION}-default"),
           "--n", str(n), "--flags", str(n), "--status", str(n // 2), "--json", out] + (["--notifier"] if notifier else [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"idlelatency: {build}, notifier {notifier}: idle.py failed:\n{p.stdout}{p.stderr}")
    with open(out) as f:
        return json.load(f)


def main():
    series, argv = rc.take_series(sys.argv[1:], "3.10")
    out = argv[0]
    n = int(argv[1]) if len(argv) > 1 else 300
    rounds = int(argv[2]) if len(argv) > 2 else 2
    if not since(series, "3.8"):
        sys.exit(f"idlelatency: Cyrus {rc.VERSION} feeds no idled through mboxevent (3.8 and later do)")
    pooled = {}   # (notifier, build, measurement) -> ms
    with tempfile.TemporaryDirectory(prefix="cmev-idle-") as tmp:
        for r in range(rounds):
            for notifier in (False, True):
                for build in rc.rotated(["stock", "patched"], r):
                    res = run(build, notifier, n, os.path.join(tmp, f"{r}-{build}-{notifier}.json"))
                    for k, v in res.items():
                        if isinstance(v, dict) and "ms" in v:
                            pooled.setdefault((notifier, build, k), []).extend(v["ms"])
                    print(f"idlelatency: round {r + 1}/{rounds}, {build}, event_notifier "
                          f"{'set' if notifier else 'unset'} done", flush=True)
    lines = [f"### IMAP IDLE and NOTIFY on Cyrus {rc.VERSION}, through idled: {n} changes per measurement, "
             f"{rounds} rounds\n",
             "Time from the changing side's reply (LMTP 250 to DATA, or QUIT's 221; the STORE's tagged OK) "
             "to the waiting client's untagged EXISTS / FETCH / STATUS, in ms, samples of all rounds pooled "
             "(tests/e2e/idle.py; a negative time: the client heard before the reply arrived, which is why "
             "the comparison is a difference in ms, not a ratio). Nothing was missed in any run.\n",
             "| measurement | event_notifier | stock p50 / p99 | patched p50 / p99 | patched − stock p50 | "
             "patched − stock p99 |", "|---|---|---|---|---|---|"]
    names = sorted({k for (_, _, k) in pooled})
    for notifier in (False, True):
        for k in names:
            s, p = pooled.get((notifier, "stock", k)), pooled.get((notifier, "patched", k))
            if not s or not p:
                continue
            s50, s99, p50, p99 = pct(s, 50), pct(s, 99), pct(p, 50), pct(p, 99)
            lines.append(f"| {k} | {'set' if notifier else 'unset'} | {s50:.2f} / {s99:.2f} | "
                         f"{p50:.2f} / {p99:.2f} | **{p50 - s50:+.2f}** | **{p99 - s99:+.2f}** |")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("idlelatency: results in", out)


if __name__ == "__main__":
    main()
