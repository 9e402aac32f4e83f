#!/usr/bin/env python3
"""Analyzer speed, heaptrail against heaptrack_print, runs interleaved so that both see the
same load (this VM's 2 CPUs are shared): for each recording of a trace_sizes.py run
(`--keep DIR`), `heaptrail analyze` (symbolized) and `heaptrack_print --print-leaks 1` on
heaptrack's file of the same run; and events/s of `heaptrail analyze --no-symbols` on a
synthetic trace (tools/bench/gen_trace.cpp). Prints the best of N runs (wall time and
CPU time, user + system) and the ratios, and the load average when it started.

  tools/bench/trace_sizes.py --build build --keep /tmp/sizes      # once, as root
  tools/bench/analyze_speed.py --build build --recordings /tmp/sizes --synthetic syn.htr

A second heaptrail (`--baseline OTHER/bin/heaptrail`) is run interleaved too, for a
before/after comparison in the same run."""
import argparse
import os
import re
import subprocess


def timed(cmd):
    """(wall seconds, CPU seconds) of one run."""
    r = subprocess.run(["/usr/bin/time", "-f", "TIME %e %U %S", *cmd], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    m = re.search(r"TIME ([\d.]+) ([\d.]+) ([\d.]+)", r.stderr)
    if r.returncode != 0 or not m:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()[-300:]}")
    return float(m.group(1)), float(m.group(2)) + float(m.group(3))


def best(cmds, runs):
    """Best wall and best CPU time of each command, the commands run in turn."""
    results = [[] for _ in cmds]
    for _ in range(runs):
        for i, cmd in enumerate(cmds):
            results[i].append(timed(cmd))
    return [(min(w for w, _ in r), min(c for _, c in r)) for r in results]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default="build")
    p.add_argument("--baseline", help="another heaptrail binary to compare with")
    p.add_argument("--recordings", help="directory of a trace_sizes.py --keep run")
    p.add_argument("--only", default="")
    p.add_argument("--synthetic", help="a trace written by gen_trace")
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()
    heaptrail = os.path.join(a.build, "bin", "heaptrail")
    binaries = [heaptrail] + ([a.baseline] if a.baseline else [])
    print(f"load average at start: {os.getloadavg()[0]:.2f}, best of {a.runs} interleaved runs\n")
    if a.recordings:
        names = [n for n in ("churn", "threads", "sqlite3", "jq", "perl", "git", "python3")
                 if not a.only or n in a.only.split(",")]
        head = "| workload | `heaptrail analyze` wall / CPU |"
        if a.baseline:
            head += " baseline wall / CPU |"
        head += " `heaptrack_print` wall / CPU | ratio wall | ratio CPU |"
        print(head)
        print("| --- " * (head.count("|") - 1) + "|")
        for name in names:
            trace = os.path.join(a.recordings, f"{name}.htr")
            theirs = os.path.join(a.recordings, f"{name}.heaptrack.zst")
            if not (os.path.exists(trace) and os.path.exists(theirs)):
                continue
            cmds = [[b, "analyze", trace] for b in binaries]
            cmds.append(["heaptrack_print", "--print-leaks", "1", theirs])
            res = best(cmds, a.runs)
            cells = " | ".join(f"{w:.3f} s / {c:.3f} s" for w, c in res)
            ours, hp = res[0], res[-1]
            print(f"| {name} | {cells} | **{ours[0] / hp[0]:.2f}** | **{ours[1] / hp[1]:.2f}** |", flush=True)
    if a.synthetic:
        info = subprocess.run([heaptrail, "info", a.synthetic], capture_output=True, text=True).stdout
        m = re.search(r"^events:\s+(\d+)", info, re.M)
        events = int(m.group(1)) if m else 0
        res = best([[b, "analyze", "--no-symbols", a.synthetic] for b in binaries], a.runs)
        print(f"\nsynthetic trace, {events:,} events (`heaptrail analyze --no-symbols`):\n")
        for b, (w, c) in zip(binaries, res):
            print(f"- {b}: {w:.2f} s wall ({events / w / 1e6:.1f} M events/s), {c:.2f} s CPU "
                  f"({events / c / 1e6:.1f} M events/s)")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
