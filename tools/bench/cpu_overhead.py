"""Figure 1 in CPU time: what each tool costs per event, counted as CPU time (user + system)
of the whole process tree (workload + tool), so that other load on the machine does not
enter the figure (a wall-clock figure on a shared 2-CPU VM mostly measures the neighbours).
Trap handling runs in the trapping task and counts as its system time.

For each workload and tool: CPU(tool, work) - CPU(tool, empty) - (CPU(bare, work) -
CPU(bare, empty)), divided by the workload's events: start-up and attach costs cancel
out. Tools: the entry-probe floor (bench-floor on the sites of `--probe-sites=entry`),
heaptrail-record (its own sites) and heaptrack. Runs rotate within each iteration.

Needs a harness build (`tools/bench/run.sh` makes one; or `cmake -S tools/bench -B
build-bench/harness && cmake --build build-bench/harness`); the probe lists and inputs of
`bench.py` (run/probes-*.txt, run/sqlite.sql, run/jq-input.json) are made when missing:

    sudo python3 tools/bench/cpu_overhead.py --build build-bench/harness [--runs 3] [--only churn,threads]

The recorder is run with its default `--stack-mode auto` (unwinding by CFI tables) and,
as its own column, with `--stack-mode fp` (frame pointers only): their difference is what
the CFI walk costs per event.

Standard library only; prints a Markdown table.
"""
import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys


def cpu_of(cmd, stdin_path=None):
    """CPU seconds (user + system) of `cmd` and every descendant it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(stdin_path or os.devnull, "rb") as stdin:
        p = subprocess.run(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}...: exit {p.returncode}: {p.stderr.decode()[-800:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, p.stdout.decode() + p.stderr.decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="churn,threads,sqlite3,perl,jq")
    args = ap.parse_args()
    prepare(args)
    b = os.path.abspath(args.build)
    run = os.path.join(b, "run")
    rec = os.path.join(b, "heaptrail", "bin", "heaptrail-record")
    info = os.path.join(b, "heaptrail", "bin", "heaptrail")
    floor = os.path.join(b, "bench-floor")
    churn, threads = os.path.join(b, "workloads", "churn"), os.path.join(b, "workloads", "threads")
    perl_script = ("my %h; for my $i (1..40000) { $h{\"key$i\"} = [map { $_ * $i } 1..6]; } "
                   "my $n = 0; for my $k (sort keys %h) { $n += scalar @{$h{$k}}; delete $h{$k} if $n % 3; } "
                   "print \"$n\\n\";")
    jq_filter = ("[.[] | {id, total: ([.values[]] | add), tags: (.tags | join(\",\"))}] | "
                 "group_by(.total % 7) | map(length)")
    # name -> (work command, work stdin, empty command, empty stdin)
    wls = {
        "churn": ([churn, "100000"], None, [churn, "1"], None),
        "threads": ([threads, "4", "25000"], None, [threads, "4", "1"], None),
        "sqlite3": ([shutil.which("sqlite3"), ":memory:"], os.path.join(run, "sqlite.sql"),
                    [shutil.which("sqlite3"), ":memory:"], None),
        "perl": ([shutil.which("perl"), "-e", perl_script], None, [shutil.which("perl"), "-e", "1"], None),
        "jq": ([shutil.which("jq"), "-c", jq_filter, os.path.join(run, "jq-input.json")], None,
               [shutil.which("jq"), "-n", "1"], None),
    }
    print("| workload | events | bare CPU | floor per event | heaptrail-record per event | **record/floor** "
          "| `--stack-mode fp` per event | fp/floor | heaptrack per event | **record/heaptrack** |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in args.only.split(","):
        work, work_in, empty, empty_in = wls[name]
        probes = os.path.join(run, f"probes-{name}.txt")
        trace = os.path.join(run, f"cpu-{name}.htr")
        tools = {
            "bare": lambda c: c,
            "floor": lambda c: [floor, "--probes", probes, "--"] + c,
            "record": lambda c: [rec, "-q", "-o", trace, "--"] + c,
            "record-fp": lambda c: [rec, "-q", "--stack-mode", "fp", "-o", trace + ".fp", "--"] + c,
            "heaptrack": lambda c: ["heaptrack", "-o", os.path.join(run, f"cpu-{name}-ht")] + c,
        }
        cost = {t: [] for t in tools}
        events = None
        for it in range(args.runs):
            order = list(tools)
            order = order[it % len(order):] + order[:it % len(order)]
            for t in order:
                w, _ = cpu_of(tools[t](work), work_in)
                if t == "record" and events is None:
                    out = subprocess.run([info, "info", trace], capture_output=True, text=True).stdout
                    events = int(re.search(r"^events:\s+(\d+)", out, re.M).group(1))
                e, _ = cpu_of(tools[t](empty), empty_in)
                cost[t].append(w - e)
                for f in os.listdir(run):
                    if f.startswith(f"cpu-{name}-ht."):
                        os.unlink(os.path.join(run, f))
        bare = statistics.median(cost["bare"])
        per = {t: [(x - bare) / events * 1e6 for x in cost[t]] for t in ("floor", "record", "record-fp", "heaptrack")}
        med = {t: statistics.median(v) for t, v in per.items()}

        def rng(v):
            return f"{statistics.median(v):.2f} ({min(v):.2f} – {max(v):.2f}) µs"
        print(f"| {name} | {events:,} | {bare:.2f} s | {rng(per['floor'])} | {rng(per['record'])} | "
              f"**{med['record'] / med['floor']:.2f}** | {rng(per['record-fp'])} | {med['record-fp'] / med['floor']:.2f} | "
              f"{rng(per['heaptrack'])} | "
              f"**{med['record'] / med['heaptrack']:.2f}** |", flush=True)


def prepare(args):
    """The inputs and floor probe lists bench.py makes, when a previous run did not."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench  # noqa: E402  (the harness's own module)
    args.runs = 1
    b = bench.Bench(args)
    for wl in b.workloads():
        if wl["name"] in args.only.split(",") and not os.path.exists(os.path.join(b.work, f"probes-{wl['name']}.txt")):
            b.discover_probes(wl)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("cpu_overhead.py: needs root (BPF)")
    main()
