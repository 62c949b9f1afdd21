"""Draws a fault-suite soak: one figure, one panel per resource, over time.

    soak_plot.py SAMPLES.csv REPORT.json OUT.png

SAMPLES.csv and REPORT.json are what herald-faults wrote (scripts/fault-suite --soak).
Every fault is a dotted vertical line labelled with its name; the warm-up, whose samples
the growth check leaves out, is shaded; a piece the check found growing is drawn bold
and named in its panel's title.
"""

import csv
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PROCESSES = ["api", "worker", "gateway1", "gateway2"]
COLOURS = {"api": "tab:blue", "worker": "tab:orange", "gateway1": "tab:green", "gateway2": "tab:red"}
MIB = 1024 * 1024

# (title, [(column, label)], scale, unit)
PANELS = [
    ("RSS", [(f"{p}.rss_bytes", p) for p in PROCESSES] + [("driver.rss_bytes", "driver (not judged)")], MIB, "MiB"),
    ("open file descriptors", [(f"{p}.fds", p) for p in PROCESSES], 1, "fds"),
    (
        "gateway descriptors beyond one per stream",
        [(f"{g}.fds_beyond_streams", g) for g in PROCESSES[2:]],
        1,
        "fds",
    ),
    ("open SSE streams (gateway metrics)", [(f"{g}.streams", g) for g in PROCESSES[2:]], 1, "streams"),
    (
        "Postgres connections per process (each held to its bound: its pool and the few outside it)",
        [(f"{p}.pg_connections", p) for p in PROCESSES]
        + [("postgres.connections", "stack database total (not judged)")],
        1,
        "connections",
    ),
    ("Redis used_memory", [("redis.used_memory_bytes", "used_memory")], MIB, "MiB"),
    ("Redis connected clients", [("redis.connected_clients", "connected_clients")], 1, "clients"),
]


def read_samples(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = {}
    for row in rows:
        for k, v in row.items():
            out.setdefault(k, [])
            try:
                out[k].append(float(v) if v != "" else math.nan)
            except ValueError:
                out[k].append(math.nan)
    return out


def main(samples_csv, report_json, out_png):
    cols = read_samples(samples_csv)
    with open(report_json) as f:
        report = json.load(f)
    soak = report.get("soak", {})
    start = report.get("started_at_unix", 0.0)
    t0 = cols["t_seconds"][0] if cols.get("t_seconds") else 0.0
    minutes = [(t - t0) / 60 for t in cols.get("t_seconds", [])]
    faults = [
        ((p["fault_started_at"] - t0) / 60, p["name"])
        for p in report.get("phases", [])
        if p.get("fault") and p.get("fault_started_at") is not None
    ]
    growing = [
        p for p in soak.get("growth", {}).get("pieces", []) if p.get("verdict") in ("grows", "above_ceiling")
    ]
    warmup = soak.get("warmup_seconds", 0) / 60

    fig, axes = plt.subplots(len(PANELS), 1, figsize=(14, 3.0 * len(PANELS)), sharex=True)
    for ax, (title, series, scale, unit) in zip(axes, PANELS):
        grown = []
        for column, label in series:
            ys = cols.get(column)
            if not ys:
                continue
            colour = COLOURS.get(column.split(".")[0], "tab:grey")
            style = "--" if column.startswith("driver.") else "-"
            ax.plot(minutes, [y / scale for y in ys], style, color=colour, marker=".", markersize=3,
                    linewidth=1, label=label)
            for p in growing:
                if p["series"] == column and p.get("verdict") in ("grows", "above_ceiling"):
                    grown.append(column)
                    ax.axvspan((p["from"] - t0) / 60, (p["to"] - t0) / 60, color="red", alpha=0.08)
        if warmup > 0:
            ax.axvspan(0, warmup, color="grey", alpha=0.12, label="warm-up")
        for at, name in faults:
            ax.axvline(at, color="black", linestyle=":", linewidth=0.8)
        ax.set_title(title + (f" — GROWS: {', '.join(sorted(set(grown)))}" if grown else ""),
                     loc="left", fontsize=10, color="red" if grown else "black")
        ax.set_ylabel(unit)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=8, ncol=5)
    top = axes[0]
    ymin, ymax = top.get_ylim()
    for at, name in faults:
        top.text(at, ymax, " " + name, rotation=90, va="top", ha="left", fontsize=7)
    axes[-1].set_xlabel("minutes since publishing began (dotted lines: faults)")
    fig.suptitle(
        f"Herald soak — {report.get('summary', '')}\nrun {report.get('run_id', '')}, "
        f"started at unix {start:.0f}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(out_png, dpi=90)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
