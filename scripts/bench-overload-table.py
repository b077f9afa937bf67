#!/usr/bin/env python3
"""The table of scripts/bench-overload.sh, from its results directory:
the saturation curve beside the trivial handler, the 2x run with admitted
and refused requests apart, the server's CPU per request, the cap's
throttling, RSS and recovery, each target of issue 13 checked.

usage: bench-overload-table.py RESULTS_DIR SERVER_CPU OVERLOAD CAP"""
import json
import os
import sys

res, share, overload, cap = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]


def load(name):
    return json.load(open(os.path.join(res, name + ".json")))


def cpu(name):
    return float(open(os.path.join(res, name + ".cpu")).read())


def thr(name):
    p0, n0, t0, p1, n1, t1 = (int(float(x)) for x in open(os.path.join(res, name + ".thr")).read().split())
    return p1 - p0, n1 - n0, t1 - t0


def ms(ns):
    return f"{ns / 1e6:.2f}"


def lat(r, status):
    l = r["by_status_latency"].get(str(status))
    return (l["p50_ns"], l["p99_ns"], l["max_ns"]) if l else None


def served(r):
    return sum(v for k, v in r["by_status"].items() if k != "0")


sat, tsat = load("sat"), load("tsat")
satrate = int(open(os.path.join(res, "satrate")).read())
F = cpu("sat") / max(1, sat["by_status"].get("200", 0))
T = cpu("tsat") / max(1, served(tsat))
print(f"saturation: {satrate}/s on {share} of a core (closed loop c=8: {sat['by_status']}, "
      f"server CPU {F * 1e6:.1f} µs an answer; trivial handler {T * 1e6:.1f} µs an answer, "
      f"{tsat['achieved_rate']:.0f}/s at c=8)")
print()
print("| rate | /flags achieved | p50 ms | p99 ms | errors (not sent) | trivial achieved | p50 ms | p99 ms | errors (not sent) |")
print("|---|---|---|---|---|---|---|---|---|")
for f in ["0.25", "0.5", "0.75", "1.0", "1.25", "1.5", "2.0"]:
    a, b = load("curve-flags-" + f), load("curve-trivial-" + f)
    print(f"| {f}x {a['target_rate']:.0f}/s | {a['achieved_rate']:.0f}/s | {ms(a['p50_ns'])} | {ms(a['p99_ns'])} | {a['errors']} ({a['dropped']}) "
          f"| {b['achieved_rate']:.0f}/s | {ms(b['p50_ns'])} | {ms(b['p99_ns'])} | {b['errors']} ({b['dropped']}) |")
print()
o = load("over")
secs = o["elapsed_ns"] / 1e9
n200, n503 = o["by_status"].get("200", 0), o["by_status"].get("503", 0)
other = {k: v for k, v in o["by_status"].items() if k not in ("0", "200", "503")}
adm, ref = lat(o, 200), lat(o, 503)
c = cpu("over")
# The refusals' cost: the run's CPU less the answers' at F, per refusal.
R = (c - n200 * F) / n503 if n503 else float("nan")
periods, throttled, ttime = thr("over")
rss = [int(x) for x in open(os.path.join(res, "rss")).read().split()]
rss_after = int(open(os.path.join(res, "rss-after")).read().strip() or 0)
rec = load("recovery")
rows = [
    ("offered", f"{o['target_rate']:.0f}/s for {overload}: {o['requests']} requests"),
    ("admitted (200)", f"{n200} ({n200 / secs:.0f}/s): p50 {ms(adm[0])} ms, p99 {ms(adm[1])} ms, max {ms(adm[2])} ms" if adm else "none"),
    ("refused (503)", f"{n503} ({n503 / secs:.0f}/s): p50 {ms(ref[0])} ms, p99 {ms(ref[1])} ms, max {ms(ref[2])} ms" if ref else "none"),
    ("not sent (all connections busy)", f"{o['dropped']} ({o['dropped'] / max(1, o['requests']):.0%})"),
    ("other statuses", str(other or "none")),
    ("server CPU", f"{c:.2f} s ({c / secs:.2f} of a core; the cap is {share}); {c / max(1, n200 + n503) * 1e6:.1f} µs a request handled"),
    ("a refusal's CPU (run CPU less answers at the saturation cost, per refusal)",
     (f"{R * 1e6:.1f} µs, {R / F:.2f} of an answer: refusing all of 2x would take {2 * satrate * R / share:.2f} of the cap" if R > 0 else
      f"n/a ({R * 1e6:.1f} µs: the saturation run's CPU per answer, {F * 1e6:.1f} µs, is off; was the machine loaded?)") if n503 else "n/a"),
    ("CFS throttling (cpu.stat)", f"throttled in {throttled} of {periods} periods, {ttime / max(1, throttled) / 1e6:.2f} ms each on average" if periods else "no cap"),
    ("RSS (KiB, a sample a second)", f"first {rss[0]}, min {min(rss)}, max {max(rss)}, last {rss[-1]}; mean of the first ten {sum(rss[:10]) // len(rss[:10])}, "
     f"of the last ten {sum(rss[-10:]) // len(rss[-10:])}; {rss_after} after the recovery run" if rss else "no samples"),
    ("recovery: 0.5x right after", f"{rec['achieved_rate']:.0f}/s, p50 {ms(rec['p50_ns'])} ms, p99 {ms(rec['p99_ns'])} ms, errors {rec['errors']} of {rec['requests']}"),
]
print("| 2x saturation | |")
print("|---|---|")
for k, v in rows:
    print(f"| {k} | {v} |")
print()
ok = lambda b: "met" if b else "NOT MET"
first10 = sum(rss[:10]) / max(1, len(rss[:10]))
last10 = sum(rss[-10:]) / max(1, len(rss[-10:]))
print("targets (issue 13):")
print(f"- admitted p99 < 5 ms: {ok(adm is not None and adm[1] < 5e6)} ({ms(adm[1]) if adm else '-'} ms)")
print(f"- refused answered in < 1 ms (p99): {ok(ref is not None and ref[1] < 1e6)} ({ms(ref[1]) if ref else '-'} ms; p50 {ms(ref[0]) if ref else '-'} ms)")
print(f"- every request answered or refused by the server (none left unsent): {ok(o['dropped'] == 0)} ({o['dropped']} not sent)")
print(f"- RSS flat (mean of the last ten samples within 10% of the first ten): {ok(abs(last10 - first10) <= 0.1 * first10)}")
print(f"- recovers at once (0.5x right after: p99 < 5 ms, no errors): {ok(rec['p99_ns'] < 5e6 and rec['errors'] == 0)}")
print(f"# cap: {cap}")
