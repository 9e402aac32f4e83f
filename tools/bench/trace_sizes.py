#!/usr/bin/env python3
"""Trace size, heaptrail against heaptrack, same machine, same run: records each
workload once with `heaptrail-record` (with the given extra options) and once with
`heaptrack`, and prints a Markdown table of bytes, bytes per event and the ratio; with
--analyze, also the wall time and peak RSS of `heaptrail analyze` (with and without
symbolization) and of `heaptrack_print --print-leaks 1` on those same recordings.

  sudo tools/bench/trace_sizes.py --build build [--only churn,perl] [-- RECORDER-OPTIONS...]

Workloads: the harness's churn, threads and sqlite3 (bench.py's definitions, workloads
compiled here from tools/bench/workloads) and four Debian programs: jq, perl, git and
/usr/bin/python3.11. Events are those of the heaptrail trace (`heaptrail info`)."""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (workload definitions: sqlite script, jq input, perl script)

PY_SCRIPT = ("import json, collections\n"
             "d = [{'id': i, 'name': 'n%d' % i, 'tags': ['t%d' % (i % 7)] * (i % 5)} for i in range(30000)]\n"
             "s = json.dumps(d)\n"
             "c = collections.Counter(len(x['tags']) for x in json.loads(s))\n"
             "print(sorted(c.items()))\n")


def workloads(work):
    wl = os.path.join(work, "workloads")
    os.makedirs(wl, exist_ok=True)
    for w in ("churn", "threads"):
        subprocess.run(["cc", "-O2", "-g", "-fno-omit-frame-pointer", "-pthread", "-o", os.path.join(wl, w),
                        os.path.join(HERE, "workloads", w + ".c")], check=True)
    sql = os.path.join(work, "sqlite.sql")
    bench.Bench.make_sqlite_script(None, bench.SQLITE_ROWS, sql)
    jq_input = os.path.join(work, "jq-input.json")
    bench.Bench.make_jq_input(None, bench.JQ_RECORDS, jq_input)
    perl_script = ("my %h; for my $i (1.." + str(bench.PERL_KEYS) + ") { $h{\"key$i\"} = [map { $_ * $i } 1..6]; } "
                   "my $n = 0; for my $k (sort keys %h) { $n += scalar @{$h{$k}}; delete $h{$k} if $n % 3; } "
                   "print \"$n\\n\";")
    jq_filter = ("[.[] | {id, total: ([.values[]] | add), tags: (.tags | join(\",\"))}] | group_by(.total % 7)"
                 " | map(length)")
    return [
        ("churn", [os.path.join(wl, "churn"), str(bench.CHURN_PAIRS)], None),
        ("threads", [os.path.join(wl, "threads"), str(bench.THREADS), str(bench.THREAD_PAIRS)], None),
        ("sqlite3", [shutil.which("sqlite3"), ":memory:"], sql),
        ("jq", [shutil.which("jq"), "-c", jq_filter, jq_input], None),
        ("perl", [shutil.which("perl"), "-e", perl_script], None),
        ("git", [shutil.which("git"), "-C", REPO, "log", "-p", "-n", "150", "--stat"], None),
        ("python3", ["/usr/bin/python3.11", "-c", PY_SCRIPT], None),
    ]


def run(cmd, stdin):
    with open(stdin or os.devnull, "rb") as f:
        return subprocess.run(cmd, stdin=f, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(REPO, "build"))
    p.add_argument("--only", default="")
    p.add_argument("--keep", help="keep the traces in this directory")
    p.add_argument("--analyze", action="store_true", help="also time the analyzers on the recordings")
    p.add_argument("options", nargs="*", help="extra heaptrail-record options (after --)")
    a = p.parse_args()
    recorder = os.path.join(a.build, "bin", "heaptrail-record")
    analyzer = os.path.join(a.build, "bin", "heaptrail")
    work = a.keep or tempfile.mkdtemp(prefix="trace-sizes-")
    os.makedirs(work, exist_ok=True)
    only = set(filter(None, a.only.split(",")))
    analyses = []
    print(f"heaptrail-record options: {' '.join(a.options) or '(defaults)'}\n")
    print("| workload | events | heaptrail | B/event | heaptrack (.zst) | B/event | heaptrail / heaptrack |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, cmd, stdin in workloads(work):
        if only and name not in only:
            continue
        trace = os.path.join(work, f"{name}.htr")
        r = run([recorder, *a.options, "-o", trace, "--", *cmd], stdin)
        if r.returncode != 0:
            print(f"| {name} | recorder failed: {r.stderr.strip().splitlines()[-1:]} |")
            continue
        info = run([analyzer, "info", trace], None).stdout
        m = re.search(r"^events:\s+(\d+)", info, re.M)
        events = int(m.group(1)) if m else 0
        prefix = os.path.join(work, f"{name}.heaptrack")
        for old in glob.glob(prefix + ".*"):
            os.unlink(old)
        run(["heaptrack", "-o", prefix, *cmd], stdin)
        files = glob.glob(prefix + ".*")
        ours = os.path.getsize(trace)
        theirs = os.path.getsize(files[0]) if files else 0
        per = lambda b: f"{b / events:.2f}" if events else "-"
        ratio = f"{ours / theirs:.2f}" if theirs else "-"
        print(f"| {name} | {events:,} | {ours:,} B | {per(ours)} | {theirs:,} B | {per(theirs)} | **{ratio}** |",
              flush=True)
        if a.analyze and files:
            analyses.append((name, events, timed([analyzer, "analyze", trace]),
                             timed([analyzer, "analyze", "--no-symbols", trace]),
                             timed(["heaptrack_print", "--print-leaks", "1", files[0]])))
    if analyses:
        print("\n| workload | events | `heaptrail analyze` | `--no-symbols` | `heaptrack_print --print-leaks 1` |"
              " time ratio (analyze / heaptrack_print) |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, events, full, bare, theirs in analyses:
            fmt = lambda r: f"{r[0]:.2f} s, {r[1] / 1024:.0f} MiB"
            print(f"| {name} | {events:,} | {fmt(full)} | {fmt(bare)} | {fmt(theirs)} | {full[0] / theirs[0]:.2f} |")


def timed(cmd):
    """(wall seconds, peak RSS KiB) of one run: the median run of three."""
    runs = []
    for _ in range(3):
        r = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M", *cmd], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        m = re.search(r"TIME ([\d.]+) (\d+)", r.stderr)
        runs.append((float(m.group(1)), int(m.group(2))) if m else (float("nan"), 0))
    return sorted(runs)[1]


if __name__ == "__main__":
    main()
