"""Plot the cost-growth curves of benches/hotpath.c (growth.csv) to a PNG."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src, dst):
    series = {}
    with open(src) as f:
        for row in csv.DictReader(f):
            series.setdefault(row["series"], []).append(
                (int(row["x"]), float(row["p50_ns"]), float(row["p99_ns"])))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    titles = {"messageContent": ("messageContent size (bytes)", "MessageNew"),
              "uids": ("UIDs in one event", "FlagsSet")}
    for ax, (name, pts) in zip(axes, sorted(series.items())):
        xs = [max(x, 1) for x, _, _ in pts]
        ax.loglog(xs, [p50 / 1000 for _, p50, _ in pts], "o-", label="p50")
        ax.loglog(xs, [p99 / 1000 for _, _, p99 in pts], "s--", label="p99")
        lo = pts[-1]
        # a line of slope 1 through the last point: linear growth
        ax.loglog(xs, [lo[1] / 1000 * x / max(lo[0], 1) for x in xs], ":",
                  color="grey", label="linear")
        xlabel, kind = titles.get(name, (name, ""))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("µs per event (caller's thread)")
        ax.set_title(f"{kind}: cost vs {xlabel.split(' (')[0]}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
