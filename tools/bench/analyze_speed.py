#!/usr/bin/env python3
"""Analyzer speed, heaptrail against heaptrack_print, runs interleaved so that both see the
same load (this VM's 2 CPUs are shared): for each recording of a trace_sizes.py run
(`--keep DIR`), `heaptrail analyze` (symbolized) and `heaptrack_print --print-leaks 1` on
heaptrack's file of the same run; and events/s of `heaptrail analyze --no-symbols` on a
synthetic trace (tools/bench/gen_trace.cpp). Prints the best of N runs (wall time and
CPU time, user + system, and peak RSS) and the ratios, and the load average when it started.

  tools/bench/trace_sizes.py --build build --keep /tmp/sizes      # once, as root
  tools/bench/analyze_speed.py --build build --recordings /tmp/sizes --synthetic syn.htr

A second heaptrail (`--baseline OTHER/bin/heaptrail`) is run interleaved too, for a
before/after comparison in the same run."""
import argparse
import os
import re
import subprocess
import time


def timed(cmd):
    """(wall seconds, CPU seconds: user + system, peak RSS in KiB; from wait4) of one run."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as null:
        child = subprocess.Popen(cmd, stdout=null, stderr=subprocess.PIPE)
        err = child.stderr.read()
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {err.decode(errors='replace').strip()[-300:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def best(cmds, runs):
    """Best wall time, CPU time and peak RSS of each command, the commands run in turn."""
    results = [[] for _ in cmds]
    for _ in range(runs):
        for i, cmd in enumerate(cmds):
            results[i].append(timed(cmd))
    return [tuple(min(x[k] for x in r) for k in range(3)) for r in results]


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
        head = "| workload | `heaptrail analyze` wall / CPU / RSS |"
        if a.baseline:
            head += " baseline wall / CPU / RSS |"
        head += " `heaptrack_print --print-leaks 1` wall / CPU / RSS | ratio wall | ratio CPU | ratio RSS |"
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
            cells = " | ".join(f"{w:.3f} s / {c:.3f} s / {m / 1024:.0f} MiB" for w, c, m in res)
            ours, hp = res[0], res[-1]
            ratios = " | ".join(f"**{ours[k] / hp[k]:.2f}**" for k in range(3))
            print(f"| {name} | {cells} | {ratios} |", flush=True)
    if a.synthetic:
        info = subprocess.run([heaptrail, "info", a.synthetic], capture_output=True, text=True).stdout
        m = re.search(r"^events:\s+(\d+)", info, re.M)
        events = int(m.group(1)) if m else 0
        res = best([[b, "analyze", "--no-symbols", a.synthetic] for b in binaries], a.runs)
        print(f"\nsynthetic trace, {events:,} events (`heaptrail analyze --no-symbols`):\n")
        for b, (w, c, m) in zip(binaries, res):
            print(f"- {b}: {w:.2f} s wall ({events / w / 1e6:.1f} M events/s), {c:.2f} s CPU "
                  f"({events / c / 1e6:.1f} M events/s), {m / 1024:.0f} MiB peak RSS")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
