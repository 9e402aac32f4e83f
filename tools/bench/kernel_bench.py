#!/usr/bin/python3.11
"""Kernel mode benchmark: `heaptrail-record --kernel` next to libbpf-tools memleak's kernel
mode (no -p) on the same load, workloads/kernel_churn (eventfd + close in a loop: kmalloc,
kmem_cache_alloc and their frees in the kernel, on the workload's behalf).

    sudo tools/bench/kernel_bench.py --recorder PATH/heaptrail-record --workload PATH/kernel_churn \
        --memleak PATH/memleak

For each run, interleaved: the workload bare, under heaptrail-record --kernel (whole
machine, all kernel events) and under memleak (whole machine, -C: its lightest output).
Reported: the workload's time per iteration, events recorded per second and lost, the
tool's own CPU (user+sys, rusage), its peak RSS and the memlock of its BPF maps, and BPF
run time per program run (BPF_ENABLE_STATS, held for the measurement only).

memleak attaches classic tracepoints, which need tracefs; this machine does not mount it,
so memleak runs in a private mount namespace with tracefs mounted there
(`unshare -m`: the machine's mounts are not changed).
"""
import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time


def log(msg):
    print(f"[kernel-bench] {msg}", file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def tool_bpf(pid):
    """BPF programs and maps the process holds, from /proc/PID/fdinfo (bpftool 7.1 as
    packaged does not list holders): {run_time_ns, run_cnt, programs, memlock}."""
    res = {"run_time_ns": 0, "run_cnt": 0, "programs": {}, "memlock": 0}
    names = {}
    try:
        for e in json.loads(subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True).stdout or "[]"):
            names[e.get("id")] = e.get("name")
    except ValueError:
        pass
    seen = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            info = dict(line.split(":", 1) for line in open(f"/proc/{pid}/fdinfo/{fd}") if ":" in line)
        except OSError:
            continue
        info = {k.strip(): v.strip() for k, v in info.items()}
        if "prog_id" in info and "run_cnt" in info and info["prog_id"] not in seen:
            seen.add(info["prog_id"])
            t, c = int(info.get("run_time_ns", 0)), int(info["run_cnt"])
            res["run_time_ns"] += t
            res["run_cnt"] += c
            if c:
                res["programs"][names.get(int(info["prog_id"]), info["prog_id"])] = (t, c)
        elif "map_id" in info and "memlock" in info and ("map", info["map_id"]) not in seen:
            seen.add(("map", info["map_id"]))
            res["memlock"] += int(info["memlock"])
    return res


class BpfStats:
    """BPF run-time statistics while held (BPF_ENABLE_STATS: a file descriptor, so the
    global sysctl other users may rely on is left alone)."""

    def __enter__(self):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        attr = ctypes.create_string_buffer(16)  # union bpf_attr { .enable_stats.type = BPF_STATS_RUN_TIME (0) }
        self.fd = libc.syscall(321, 32, attr, 16)  # __NR_bpf (x86-64), BPF_ENABLE_STATS
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "BPF_ENABLE_STATS")
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def run_workload(workload, iterations):
    out = subprocess.run([workload, str(iterations)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"work_ns=(\d+)", out).group(1))


def wait_for(stream, pattern, timeout=60):
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen += line
        if pattern in line:
            return seen
    raise RuntimeError(f"tool did not say '{pattern}': {seen}")


def under_tool(cmd, ready, workload, iterations, workers):
    """Starts the tool, waits until it says `ready`, runs the workload (`workers` copies
    at once), stops the tool with SIGINT. Returns work_ns (per copy), the tool's stderr
    and stdout, rusage and BPF figures read just before the stop."""
    tool = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    stream = tool.stderr if ready[0] == "err" else tool.stdout
    head = wait_for(stream, ready[1])
    begin = time.monotonic()
    copies = [subprocess.Popen([workload, str(iterations)], stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    work = [int(re.search(r"work_ns=(\d+)", c.communicate()[0]).group(1)) for c in copies]
    wall = time.monotonic() - begin
    # The BPF programs belong to the tool's process (memleak runs under unshare: its child).
    pids = [tool.pid] + [int(p) for p in subprocess.run(["pgrep", "-s", str(tool.pid)], capture_output=True, text=True).stdout.split()]
    bpf = max((tool_bpf(p) for p in set(pids)), key=lambda r: r["run_cnt"])
    os.killpg(tool.pid, signal.SIGINT)
    _, status, usage = os.wait4(tool.pid, 0)
    out, err = tool.stdout.read(), tool.stderr.read()
    return {"work_ns": work, "wall_s": wall, "out": out, "err": head + err, "bpf": bpf,
            "cpu_ns": (usage.ru_utime + usage.ru_stime) * 1e9, "maxrss_kib": usage.ru_maxrss}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recorder", required=True, help="heaptrail-record")
    ap.add_argument("--workload", required=True, help="workloads/kernel_churn, built")
    ap.add_argument("--memleak", help="libbpf-tools memleak binary (built from iovisor/bcc)")
    ap.add_argument("--iterations", type=int, default=50000)
    ap.add_argument("--workers", type=int, default=2, help="workload copies at once (one per CPU floods fastest)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default="/tmp/heaptrail-kernel-bench")
    args = ap.parse_args()

    recorder, workload = args.recorder, args.workload
    os.makedirs(args.out, exist_ok=True)
    trace = os.path.join(args.out, "kernel.htr")

    results = {"bare": [], "heaptrail": [], "memleak": []}
    with BpfStats():
        for run in range(args.runs):
            log(f"run {run + 1}/{args.runs}: bare")
            begin = time.monotonic()
            copies = [subprocess.Popen([workload, str(args.iterations)], stdout=subprocess.PIPE, text=True) for _ in range(args.workers)]
            work = [int(re.search(r"work_ns=(\d+)", c.communicate()[0]).group(1)) for c in copies]
            results["bare"].append({"work_ns": work, "wall_s": time.monotonic() - begin})

            log(f"run {run + 1}/{args.runs}: heaptrail-record --kernel")
            r = under_tool([recorder, "--kernel", "-o", trace], ("err", "recording"), workload, args.iterations, args.workers)
            m = re.search(r"(\d+) events .* in ([\d.]+ ?\w+), .* (\d+) lost", r["err"])
            r["events"], r["lost"] = (int(m.group(1)), int(m.group(3))) if m else (None, None)
            r["trace_bytes"] = os.path.getsize(trace)
            results["heaptrail"].append(r)
            log(f"  {r['events']} events, {r['lost']} lost, {r['trace_bytes']} bytes")

            if args.memleak:
                log(f"run {run + 1}/{args.runs}: memleak (kernel mode)")
                cmd = ["unshare", "-m", "sh", "-c",
                       f"mount -t tracefs nodev /sys/kernel/tracing && exec stdbuf -oL {args.memleak} -C -T 3 3600"]
                r = under_tool(cmd, ("out", "Attaching"), workload, args.iterations, args.workers)
                results["memleak"].append(r)

    per_iter = lambda r: median(r["work_ns"]) / args.iterations
    bare = median([per_iter(r) for r in results["bare"]])
    iterations = args.iterations * args.workers

    def row(name, rs):
        if not rs:
            return f"| {name} | not run | | | | | | |"
        t = median([per_iter(r) for r in rs])
        bpf_ns = median([r["bpf"]["run_time_ns"] / r["bpf"]["run_cnt"] for r in rs if r["bpf"]["run_cnt"]])
        # Per event: the runs of the allocation and release programs (the irq ones only
        # keep the interrupt depth), all processes of the machine.
        events = lambda r: sum(c for n, (t, c) in r["bpf"]["programs"].items() if "irq" not in str(n))
        cpu = median([r["cpu_ns"] / events(r) for r in rs if events(r)])
        rss = median([r["maxrss_kib"] for r in rs]) / 1024
        memlock = median([r["bpf"]["memlock"] for r in rs]) / (1 << 20)
        rate = median([r["events"] / r["wall_s"] for r in rs if r.get("events")])
        lost = ", ".join(str(r["lost"]) for r in rs) if "lost" in rs[0] else "not counted"
        return (f"| {name} | {t / 1000:.1f} µs ({t / bare:.2f}x) | {bpf_ns:.0f} ns | {cpu:.0f} ns | "
                f"{rate / 1e3:.0f} k/s | {lost} | {rss:.1f} + {memlock:.1f} MiB |"
                if rate else
                f"| {name} | {t / 1000:.1f} µs ({t / bare:.2f}x) | {bpf_ns:.0f} ns | {cpu:.0f} ns | "
                f"not reported | {lost} | {rss:.1f} + {memlock:.1f} MiB |")

    print(f"{args.runs} runs, {args.workers} workload copies x {args.iterations} iterations of eventfd()+close(); "
          f"medians. Bare: {bare / 1000:.1f} µs per iteration.\n")
    print("| tool | workload time per iteration (vs bare) | BPF run time per program run | tool CPU per event (start-up included) | "
          "events recorded per second | lost (each run) | footprint: peak RSS + BPF map memlock |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(row("heaptrail-record --kernel", results["heaptrail"]))
    print(row("memleak (libbpf-tools, kernel mode, -C)", results["memleak"]))
    for name in ("heaptrail", "memleak"):
        for r in results[name][:1]:
            progs = ", ".join(f"{n}: {t / c:.0f} ns x {c}" for n, (t, c) in sorted(r["bpf"]["programs"].items()))
            print(f"\n{name} programs (first run): {progs}")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({k: [{kk: vv for kk, vv in r.items() if kk not in ("out",)} for r in v] for k, v in results.items()}, f, indent=1)


if __name__ == "__main__":
    main()
