"""Events lost when Cyrus processes die right after acknowledging, stock
beside patched with its spool off (before the spool) and on.

tests/e2e/durability.py's `lmtp` check (300 LMTP deliveries, the serving
lmtpd SIGKILLed right after every 10th `250`) and `imap` check (30 imapds
SIGKILLed as soon as a STORE's tagged OK arrives) run on each build and
profile in a fresh sandbox; this counts the acknowledged operations whose
event never arrived, and the duplicates.

usage: crashloss.py [--series 3.6|3.10|3.12] RESULTS_MD [SERIES]

The series (default 3.6) may come as --series S, as in realcyrus.py, or after RESULTS_MD.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__))))
import realcyrus as rc  # noqa: E402

DURABILITY = os.path.join(rc.REPO, "tests", "e2e", "durability.py")
VARIANTS = (("stock", "stock", []),
            ("patched, spool off", "patched", ["--conf", "event_spool_size: 0"]),
            ("patched", "patched", []))
# What durability.py prints per check (it FAILs where events were lost).
LINE = re.compile(r"^(?:PASS|FAIL) (lmtp-kill|imap-kill) (\w+): (\d+) (?:deliveries|STOREs) acknowledged.*?"
                  r"lost (\d+)(?: of \d+)?, duplicates (\d+)")


def run(build, extra, series):
    p = subprocess.run(["python3", DURABILITY, "--prefix", rc.BUILDS[build], "--series", series,
                        "--only", "lmtp,imap"] + extra, capture_output=True, text=True)
    found = {}
    for line in p.stdout.splitlines():
        m = LINE.match(line)
        if m:
            found[(m.group(1), m.group(2))] = tuple(int(m.group(k)) for k in (3, 4, 5))
    if len(found) != 4:
        sys.exit(f"crashloss: {build} {extra}: expected 4 results from durability.py:\n{p.stdout}{p.stderr}")
    return found


def main():
    series, argv = rc.take_series(sys.argv[1:])
    if len(argv) > 1:   # RESULTS_MD SERIES
        series, argv = rc.take_series(["--series", argv[1], argv[0]])
    out = argv[0]
    res = {}
    for label, build, extra in VARIANTS:
        res[label] = run(build, extra, series)
        print(f"crashloss: {label} done", flush=True)
    lines = [f"### Events lost to killed processes, Cyrus {rc.VERSION}\n",
             "tests/e2e/durability.py: `lmtp`, 300 LMTP deliveries, the serving lmtpd SIGKILLed right after "
             "every 10th `250`; `imap`, 30 imapds SIGKILLed as soon as a STORE's tagged OK arrives (plus one "
             "operation by a process left alive). Lost: acknowledged operations whose event never arrived; "
             "duplicates: events that arrived twice (only the batch a killed process had in flight).\n",
             "| check, profile | " + " | ".join(f"{v[0]}: lost / duplicates" for v in VARIANTS) + " |",
             "|---|" + "---|" * len(VARIANTS)]
    for check in ("lmtp-kill", "imap-kill"):
        for prof in ("default", "all"):
            acked = res["patched"][(check, prof)][0]
            cells = [f"{res[v[0]][(check, prof)][1]} / {res[v[0]][(check, prof)][2]}" for v in VARIANTS]
            lines.append(f"| {check}, {prof} ({acked} acknowledged) | " + " | ".join(cells) + " |")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("crashloss: results in", out)


if __name__ == "__main__":
    main()
