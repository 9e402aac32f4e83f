#!/usr/bin/python3.11
"""Stacks of stock Debian programs, heaptrail next to heaptrack 1.4 (issue 10).

For each program, both tools record the same command; every leak site heaptrack reports
(its flame-graph output of leaked bytes: one root-first stack per site) is looked up in
heaptrail's folded output of outstanding bytes (same leaf function), and the two stacks
are compared: frame count (inline frames included on both sides) and function sequence.
Also reported per program: unique stacks in two heaptrail runs (stable?), incomplete
stacks, and the memory of the unwind tables (heaptrail info).

  sudo /usr/bin/python3.11 tools/bench/stacks.py --build build [--mode auto|cfi|fp]

Needs root, heaptrack and heaptrack_print, jq, sqlite3, perl, git, xz.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict


def workloads(tmp):
    data = os.path.join(tmp, "input.json")
    with open(data, "w") as out:
        json.dump([{"id": i, "name": "n%d" % (i % 97), "tags": ["t%d" % (i % 7)] * 3} for i in range(20000)], out)
    sql = os.path.join(tmp, "script.sql")
    with open(sql, "w") as out:
        out.write("create table t(a integer primary key, b text, c real);\nbegin;\n")
        for i in range(3000):
            out.write("insert into t(b, c) values('row %d', %d.5);\n" % (i, i))
        out.write("commit;\ncreate index tb on t(b);\nselect count(*), sum(c) from t where b like '%7%';\n"
                  "select b, count(*) from t group by substr(b, 1, 5);\n")
    blob = os.path.join(tmp, "blob.bin")
    with open(blob, "wb") as out:
        out.write(os.urandom(1 << 20) + b"heaptrail " * 300000)
    return {
        "jq": ["/usr/bin/jq", "-c", "group_by(.name) | map({k: .[0].name, n: length})", data],
        "sqlite3": ["/bin/sh", "-c", "/usr/bin/sqlite3 :memory: < " + sql],
        "perl": ["/usr/bin/perl", "-e",
                 "my %h; for my $i (1..200000) { push @{$h{$i % 1000}}, $i } "
                 "my @k = sort { $a <=> $b } keys %h; print scalar(@k), \"\\n\";"],
        "git": ["/usr/bin/git", "-C", os.path.dirname(os.path.abspath(__file__)), "log", "-n", "40", "--stat"],
        "python3.11": ["/usr/bin/python3.11", "-c",
                       "import json, threading, collections\n"
                       "d = [collections.Counter(str(i) * 3) for i in range(20000)]\n"
                       "print(len(json.dumps([dict(c) for c in d[:2000]])))"],
        # multi-threaded (two compression threads) and the longest running one
        "xz": ["/usr/bin/xz", "-T2", "-6", "-k", "-c", blob],
    }


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace", **kw)


def folded(text):
    stacks = {}
    for line in text.splitlines():
        frames, _, value = line.rpartition(" ")
        frames = frames.rstrip(";")
        if not frames or not value.isdigit() or int(value) == 0:
            continue
        stacks[frames] = stacks.get(frames, 0) + int(value)
    return stacks


def clean(name):
    # heaptrack: "function (file.c)"; both tools: C++ names with their parameters.
    return re.sub(r"\s*\(.*\)$", "", name).strip()


def from_main(frames):
    # heaptrack's stacks start at main: compare from there (heaptrail goes on to _start).
    return frames[frames.index("main"):] if "main" in frames else frames


def heaptrack(cmd, tmp, name):
    prefix = os.path.join(tmp, "ht." + name)
    r = run(["heaptrack", "-o", prefix] + cmd)
    files = [f for f in os.listdir(tmp) if f.startswith("ht." + name)]
    if not files:
        sys.exit("heaptrack wrote nothing for %s: %s" % (name, r.stderr[-500:]))
    out = os.path.join(tmp, "ht." + name + ".folded")
    run(["heaptrack_print", "-f", os.path.join(tmp, files[0]), "-F", out, "--flamegraph-cost-type", "leaked"])
    with open(out) as f:
        return folded(f.read())


def heaptrail(build, cmd, tmp, name, mode, run_index):
    trace = os.path.join(tmp, "%s.%d.htr" % (name, run_index))
    r = run([os.path.join(build, "bin/heaptrail-record"), "--stack-mode", mode, "-o", trace, "--"] + cmd)
    if r.returncode != 0:
        sys.exit("heaptrail-record failed on %s: %s" % (name, r.stderr[-800:]))
    summary = r.stderr.strip().splitlines()[-1]
    unique = int(re.search(r"(\d+) unique stacks", summary).group(1))
    incomplete = re.search(r"\((\d+) incomplete\)", summary)
    info = run([os.path.join(build, "bin/heaptrail"), "info", trace]).stdout
    tables = re.search(r"unwind tables of (\d+) files, ([^ ]+ \S+) \(BPF maps ([^)]+)\)", info)
    an = run([os.path.join(build, "bin/heaptrail"), "analyze", trace, "--format", "folded", "--no-default-suppressions"])
    if an.returncode != 0:
        an = run([os.path.join(build, "bin/heaptrail"), "analyze", trace, "--format", "folded"])
    return {
        "stacks": folded(an.stdout),
        "unique": unique,
        "incomplete": int(incomplete.group(1)) if incomplete else 0,
        "tables": "%s files, %s (BPF maps %s)" % tables.groups() if tables else "none",
    }


def compare(ht, ours):
    by_leaf = defaultdict(list)
    for stack in ours:
        frames = from_main([clean(f) for f in stack.split(";")])
        by_leaf[frames[-1]].append(frames)
    sites = same = deeper_or_equal = 0
    ht_depth = our_depth = 0
    for stack in ht:
        frames = from_main([clean(f) for f in stack.split(";")])
        candidates = by_leaf.get(frames[-1])
        if not candidates:
            continue
        sites += 1
        best = max(candidates, key=lambda c: (c == frames, len(c)))
        ht_depth += len(frames)
        our_depth += len(best)
        same += best == frames
        deeper_or_equal += len(best) >= len(frames)
    return sites, same, deeper_or_equal, ht_depth, our_depth


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build")
    parser.add_argument("--mode", default="auto")
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="heaptrail-stacks-")
    print("| program | heaptrack leak sites found by heaptrail | same function sequence | as deep or deeper | "
          "mean depth heaptrack / heaptrail | unique stacks run 1 / run 2 | incomplete | unwind tables |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, cmd in workloads(tmp).items():
        if args.only and name not in args.only.split(","):
            continue
        ht = heaptrack(cmd, tmp, name)
        first = heaptrail(args.build, cmd, tmp, name, args.mode, 1)
        second = heaptrail(args.build, cmd, tmp, name, args.mode, 2)
        sites, same, deep, htd, ourd = compare(ht, first["stacks"])
        print("| %s | %d of %d | %d | %d | %.1f / %.1f | %d / %d | %d | %s |" % (
            name, sites, len(ht), same, deep, htd / max(sites, 1), ourd / max(sites, 1), first["unique"],
            second["unique"], first["incomplete"], first["tables"]), flush=True)


if __name__ == "__main__":
    main()
