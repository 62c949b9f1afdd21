"""Joins one light-load latency run's stamps into stages (scripts/profile-latency).

Inputs, in the directory given:
  events.csv   herald-bench, per event: n, POST sent, 202 arrived, frames arrived
               (first, median, last over the streams), Unix microseconds
  db.csv       Postgres, per event: seq, id, n, created_at (the API's insert
               statement), sequenced_at (the sequencing transaction), microseconds
  api.log, worker.log, gateway.log
               the services' JSON logs; the `herald_timing` trace events:
               api      committed (id), notified
               worker   woken, sequenced (first, last), published (first, last),
                        recorded (first, last)
               gateway  received (first), written (last)
Prints the stages' percentiles and writes profile.json beside the inputs.
"""

import bisect
import csv
import json
import sys
from datetime import datetime
from pathlib import Path


def unix_us(stamp: str) -> int:
    # tracing-subscriber writes RFC 3339 with microseconds (or nanoseconds) and Z.
    head, _, frac = stamp.rstrip("Z").partition(".")
    base = datetime.fromisoformat(head + "+00:00").timestamp()
    return int(base) * 1_000_000 + int((frac + "000000")[:6])


def timing(log: Path) -> list[dict]:
    out = []
    if not log.exists():
        return out
    for line in log.read_text(errors="replace").splitlines():
        if '"herald_timing"' not in line:
            continue
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("target") != "herald_timing":
            continue
        e["t"] = unix_us(e["timestamp"])
        out.append(e)
    return out


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    return v[min(len(v) - 1, int(q * len(v)))]


def main(d: Path) -> int:
    bench = {}
    with open(d / "events.csv") as f:
        for r in csv.DictReader(f):
            if r["accepted_us"] and r["median_frame_us"]:
                bench[int(r["n"])] = {k: int(v) for k, v in r.items() if k.endswith("_us") and v}
    db = {}
    with open(d / "db.csv") as f:
        for r in csv.DictReader(f):
            db[int(r["n"])] = r
    api, worker, gateway = (timing(d / f"{s}.log") for s in ("api", "worker", "gateway"))
    committed = {e["id"]: e["t"] for e in api if e["message"] == "committed"}
    notified = sorted(e["t"] for e in api if e["message"] == "notified")
    woken = sorted(e["t"] for e in worker if e["message"] == "woken")
    steps = {m: [e for e in worker if e["message"] == m] for m in ("sequenced", "published", "recorded")}
    received = [e for e in gateway if e["message"] == "received"]
    received_first = [e["first"] for e in received]
    written = [e for e in gateway if e["message"] == "written"]
    written_last = [e["last"] for e in written]

    def step_of(kind: str, seq: int):
        for e in steps[kind]:  # few hundred to a few thousand: a scan is fine
            if e["first"] <= seq <= e["last"]:
                return e
        return None

    def after(times: list[int], t: int):
        i = bisect.bisect_left(times, t)
        return times[i] if i < len(times) else None

    stages: dict[str, list[float]] = {}
    batch_sizes = []

    def add(name: str, a, b):
        if a is not None and b is not None:
            stages.setdefault(name, []).append((b - a) / 1000.0)

    joined = 0
    for n, b in bench.items():
        row = db.get(n)
        if row is None:
            continue
        seq, created, seq_start = int(row["seq"]), int(row["created_us"]), int(row["sequenced_us"])
        c = committed.get(row["id"])
        s = step_of("sequenced", seq)
        p = step_of("published", seq)
        r = step_of("recorded", seq)
        i = bisect.bisect_right(received_first, seq) - 1
        g = received[i]["t"] if i >= 0 else None
        j = bisect.bisect_left(written_last, seq)
        w = written[j]["t"] if j < len(written) else None
        if None in (c, s, p, g, w):
            continue
        joined += 1
        batch_sizes.append(s["last"] - s["first"] + 1)
        add("1 api: insert statement starts → committed", created, c)
        add("2 api: committed → 202 arrives at the client", c, b["accepted_us"])
        add("3 api → worker: committed → NOTIFY sent", c, after(notified, c))
        add("4 api → worker: committed → worker woken", c, after(woken, c))
        add("5 worker: committed → sequencing transaction starts", c, seq_start)
        add("6 worker: sequencing starts → sequenced (commit flushed)", seq_start, s["t"])
        add("7 worker: sequenced → Redis acknowledged the publish", s["t"], p["t"])
        add("8 worker: acknowledged → published_seq recorded", p["t"], r["t"] if r else None)
        add("9 bus: sequenced → gateway received", s["t"], g)
        add("10 gateway: received → written, or handed to delivery tasks", g, w)
        # The last write ends after the first frames arrived: measure from the receipt.
        add("11 client: gateway received → first frame arrives", g, b["first_frame_us"])
        add("12 client: gateway received → median frame arrives", g, b["median_frame_us"])
        add("total: committed → median frame arrives", c, b["median_frame_us"])
        add("total: 202 arrives → median frame arrives (the bench's figure)", b["accepted_us"], b["median_frame_us"])
        add("total: 202 arrives → first frame arrives", b["accepted_us"], b["first_frame_us"])

    def order(name: str):
        head = name.split(" ", 1)[0]
        return (1, 0) if not head.isdigit() else (0, int(head))

    table = []
    print(f"{'stage':<66} {'p50':>7} {'p90':>7} {'p99':>7}  (ms, {joined} events)")
    for name in sorted(stages, key=order):
        v = stages[name]
        row = {"stage": name, "events": len(v), "p50": pct(v, 0.5), "p90": pct(v, 0.9), "p99": pct(v, 0.99)}
        table.append(row)
        print(f"{name:<66} {row['p50']:7.3f} {row['p90']:7.3f} {row['p99']:7.3f}")
    if batch_sizes:
        print(f"events per sequencing step: p50 {pct(batch_sizes, 0.5)}, max {max(batch_sizes)}")
    (d / "profile.json").write_text(
        json.dumps({"events": joined, "stages": table, "events_per_step_p50": pct(batch_sizes, 0.5) if batch_sizes else None}, indent=2)
    )
    if joined < 0.9 * max(1, len(bench)):
        print(f"profile: only {joined} of {len(bench)} events could be joined", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
