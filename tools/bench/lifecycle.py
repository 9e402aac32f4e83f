"""Figures 8 and 9 of the harness: how long heaptrail-record takes to start and to stop,
and what a recording with --follow-forks costs a process outside the recorded tree.

8. Start and stop. `heaptrail-record -- CMD` for a C program (/bin/true) and a C++ one
   (libstdc++ loaded: workloads/cxx_noop.cpp), CMD run under `stopwatch` so that the
   moment it exits is known: total wall time, and the time from the target's exit to the
   recorder's (target < 0.3 s; total < 0.5 s). Attaching with `-p` to a process that has
   100 shared libraries loaded (generated): time to the recorder's "recording" line
   (target < 0.5 s), then to its exit after SIGINT. Each also with one link per probe
   (HEAPTRAIL_NO_UPROBE_MULTI=1: what kernels before 6.6 get).
9. Bystander. `churn`'s malloc/free rate alone, while `heaptrail-record -f` records an
   idle process elsewhere (target: within 5%), and, for contrast, while empty programs
   sit on the same functions for every process (`bench-floor --all-processes`: how -f
   worked before).
"""
import os
import select
import signal
import statistics
import subprocess
import time

LIBRARIES = 100


def _wait_line(stream, text, timeout=60.0):
    """Reads `stream` (a pipe) until a line containing `text`; returns the monotonic time
    it arrived, or None."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = stream.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        if text.encode() in buf:
            return time.monotonic()
    return None


def _env(single):
    env = dict(os.environ)
    if single:
        env["HEAPTRAIL_NO_UPROBE_MULTI"] = "1"
    return env


def _run_short(b, cmd, single, tag):
    """heaptrail-record -- stopwatch CMD: total wall time, target lifetime, and the
    recorder's time after the target exited."""
    sw = os.path.join(b.work, f"sw-{tag}")
    if os.path.exists(sw):
        os.unlink(sw)
    trace = os.path.join(b.work, f"{tag}.htr")
    t0 = time.monotonic()
    p = subprocess.run([b.recorder, "-o", trace, "--", b.stopwatch, sw] + cmd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(single))
    t1 = time.monotonic()
    if p.returncode != 0:
        raise RuntimeError(f"{tag}: {p.stderr.decode()[-1000:]}")
    text = open(sw).read()
    end_ns = int(text.split("end_ns=")[1].split()[0])
    elapsed_ns = int(text.split("elapsed_ns=")[1].split()[0])
    return {"total_s": t1 - t0, "target_s": elapsed_ns / 1e9, "after_exit_s": t1 - end_ns / 1e9}


def _make_many_libraries(b):
    """A program with LIBRARIES shared libraries loaded, which prints "ready" and waits on
    stdin (cached in the run directory)."""
    d = os.path.join(b.work, f"libs{LIBRARIES}")
    exe = os.path.join(d, "many_libs")
    if os.path.exists(exe):
        return exe
    os.makedirs(d, exist_ok=True)
    libs = []
    for i in range(LIBRARIES):
        src = os.path.join(d, f"lib{i}.c")
        with open(src, "w") as f:
            f.write(f"#include <stdlib.h>\nvoid* lib{i}_make(void) {{ return malloc({i + 1}); }}\n")
        so = os.path.join(d, f"libbench{i}.so")
        b.sh(["gcc", "-O1", "-shared", "-fPIC", src, "-o", so], check=True)
        libs.append(f"-lbench{i}")
    main = os.path.join(d, "main.c")
    with open(main, "w") as f:
        f.write("#include <stdio.h>\n#include <unistd.h>\n")
        for i in range(LIBRARIES):
            f.write(f"void* lib{i}_make(void);\n")
        f.write("int main(void) {\n")
        for i in range(LIBRARIES):
            f.write(f"  lib{i}_make();\n")
        f.write('  write(1, "ready\\n", 6);\n  char c;\n  while (read(0, &c, 1) > 0) {}\n  return 0;\n}\n')
    b.sh(["gcc", "-O1", main, "-o", exe, f"-L{d}", f"-Wl,-rpath,{d}"] + libs, check=True)
    return exe


def _attach(b, exe, single, tag):
    target = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        if _wait_line(target.stdout, "ready") is None:
            raise RuntimeError("the 100-library program did not start")
        libs = sum(1 for l in open(f"/proc/{target.pid}/maps") if ".so" in l and "r-xp" in l)
        trace = os.path.join(b.work, f"{tag}.htr")
        t0 = time.monotonic()
        rec = subprocess.Popen([b.recorder, "-p", str(target.pid), "-o", trace], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(single))
        started = _wait_line(rec.stderr, "recording pid")
        if started is None:
            rec.kill()
            raise RuntimeError(f"{tag}: the recorder did not start: {rec.communicate()[1].decode()[-1000:]}")
        t1 = time.monotonic()
        rec.send_signal(signal.SIGINT)
        rec.communicate(timeout=60)
        t2 = time.monotonic()
        return {"attach_s": started - t0, "stop_s": t2 - t1, "mapped_libraries": libs}
    finally:
        target.stdin.close()
        target.wait(timeout=60)


def measure(b):
    res = {"short": {}, "attach": {}}
    cxx = os.path.join(b.build, "workloads", "cxx_noop")
    programs = {"/bin/true": ["/bin/true"], "C++ program (libstdc++)": [cxx]}
    for it in range(b.runs):
        for name, cmd in programs.items():
            for single in (False, True):
                key = f"{name}|{'single' if single else 'multi'}"
                res["short"].setdefault(key, []).append(_run_short(b, cmd, single, f"short-{it}"))
        b.sample_load()
    exe = _make_many_libraries(b)
    for it in range(b.runs):
        for single in (False, True):
            key = "single" if single else "multi"
            res["attach"].setdefault(key, []).append(_attach(b, exe, single, f"attach-{it}"))
    # heaptrack's fixed cost on the same programs, for reference.
    res["heaptrack"] = {}
    for name, cmd in programs.items():
        walls = []
        for it in range(b.runs):
            prefix = os.path.join(b.work, f"ht-short-{it}")
            t0 = time.monotonic()
            subprocess.run(["heaptrack", "-o", prefix] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            walls.append(time.monotonic() - t0)
            for f in os.listdir(b.work):
                if f.startswith(f"ht-short-{it}."):
                    os.unlink(os.path.join(b.work, f))
        res["heaptrack"][name] = walls
    return res


def _churn_rate(b):
    _, out, _, _ = b.sh([b.churn, str(b.bystander_pairs)], check=True)
    c = b.parse_counts(out)
    return c["calls"] / (c["work_ns"] / 1e9)


def _with_background(b, cmd, body):
    """Runs `cmd` (whose target prints "ready", then waits on stdin), runs body() once it
    is ready, then lets it finish."""
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        if _wait_line(p.stdout, "ready") is None:
            raise RuntimeError(f"{cmd[0]} did not start")
        return body()
    finally:
        p.stdin.close()
        p.wait(timeout=60)


def bystander(b):
    aged = os.path.join(b.build, "samples", "aged")  # the root project's samples/ (CMAKE_BINARY_DIR)
    churn_wl = next(w for w in b.workloads_list if w["name"] == "churn")
    if "probes" not in churn_wl:
        b.discover_probes(churn_wl)
    res = {"alone": [], "recording_elsewhere": [], "system_wide_probes": []}
    trace = os.path.join(b.work, "bystander.htr")
    for it in range(b.runs):
        res["alone"].append(_churn_rate(b))
        res["recording_elsewhere"].append(
            _with_background(b, [b.recorder, "-f", "-o", trace, "--", aged, "stdin"], lambda: _churn_rate(b)))
        res["system_wide_probes"].append(
            _with_background(b, [b.floor, "--probes", churn_wl["probes"], "--all-processes", "--", aged, "stdin"],
                             lambda: _churn_rate(b)))
        b.sample_load()
    res["pairs"] = b.bystander_pairs
    return res


def median(xs):
    return statistics.median(xs) if xs else None
