"""Where a real Cyrus process spends its event CPU: perf samples of the serving
process (all threads, DWARF call graphs) while it works, grouped by the
outermost event function on each sample's stack (mboxevent_* and cmev_* in
the caller's thread, notify() in stock's, and the library's sender thread).
A profile, not a benchmark: it tells which part of the events' cost is
Cyrus gathering data (the same in both builds) and which is building and
sending the event.

usage: eventprofile.py stock|patched off|default|all lmtp|store [N]   (needs perf, root)
       EVENTPROFILE_DUMP=FILE keeps the perf script text for a closer look
"""
import collections
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import realcyrus as rc  # noqa: E402
from e2elib import message  # noqa: E402

EVENT_FN = re.compile(r"^(mboxevent_|cmev_|notify$)")
# the adapter's own helpers, shown one level deeper
DEEPER = {"extract_message", "extract_content", "mailbox_specialuse"}


def frames(sample):
    """The sample's command and its frames, innermost first, as (symbol,
    object) pairs."""
    lines = [l.strip() for l in sample.strip().split("\n") if l.strip()]
    out = []
    for l in lines[1:]:
        if len(l.split(None, 1)) > 1:
            head, sep, obj = l.split(None, 1)[1].rpartition(" (")
            sym = head if sep else obj
            out.append((re.sub(r"\+0x[0-9a-f]+$", "", sym), obj.rstrip(")") if sep else ""))
    return lines[0].split()[0], out


def outside_kernel(frames):
    """The innermost frame not in the kernel (a syscall shows as the libc
    function that made it)."""
    return next((sym for sym, obj in frames if obj != "[kernel.kallsyms]"), "(kernel)")


def main():
    build, prof, work = sys.argv[1:4]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    with rc.started("cmev-eventprofile-", lambda tmp: [rc.Target(build, prof, rc.profiles(tmp)[prof])]) as (tmp, (t,)):
        data = os.path.join(tmp, "perf.data")
        raw = message(1, "bench", msgid=False)
        if work == "store":
            t.deliver(n, raw)
            t.store(1)
        pid = t.lmtpd if work == "lmtp" else t.imapd
        perf = subprocess.Popen(["perf", "record", "-q", "--call-graph", "dwarf,16384", "-F", "4000", "-o", data,
                                 "-p", str(pid)], stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        t.deliver(n, raw) if work == "lmtp" else t.store(n - 1)
        perf.send_signal(signal.SIGINT)
        perf.wait()
        _, cpu, sender = t.runs[work][-1]
        msgs = n if work == "lmtp" else n - 1
        text = subprocess.run(["perf", "script", "-i", data], capture_output=True, text=True).stdout
        if os.environ.get("EVENTPROFILE_DUMP"):
            open(os.environ["EVENTPROFILE_DUMP"], "w").write(text)
    total, by, sender_by = 0, collections.Counter(), collections.Counter()
    for sample in text.split("\n\n"):
        if not sample.strip():
            continue
        comm, fr = frames(sample)
        syms = [sym for sym, _ in fr]
        total += 1
        if comm == "mboxevent-send":
            by["sender thread (library)"] += 1
            sender_by[outside_kernel(fr)] += 1
            continue
        outer = [i for i, s in enumerate(syms) if EVENT_FN.match(s)]
        if outer:
            j = max(outer)
            callee = syms[j - 1] if j else "(self)"
            if j > 1 and callee in DEEPER:
                callee += " → " + syms[j - 2]
            by[f"{syms[j]} → {callee}"] += 1
    per = cpu * 1e6 / msgs
    print(f"{build} {prof} {work}: {per:.0f} µs CPU per message ({sender * 1e6 / msgs:.1f} in the sender thread), "
          f"{total} samples, {sum(by.values())} in event code "
          f"= {sum(by.values()) / max(total, 1) * per:.1f} µs per message")
    for what, k in by.most_common(25):
        print(f"  {k / max(total, 1) * per:6.1f} µs  {what}")
    print("the sender thread, by the innermost function outside the kernel:")
    for what, k in sender_by.most_common(12):
        print(f"  {k / max(total, 1) * per:6.1f} µs  {what}")


if __name__ == "__main__":
    main()
