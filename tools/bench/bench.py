#!/usr/bin/env python3
"""heaptrail benchmark harness: runs every figure and writes BENCHMARKS.md.

Started by tools/bench/run.sh (which installs packages and builds); see
tools/bench/README.md for what each figure means. Standard library only.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Workload sizes: chosen so that one traced run takes a few seconds here (~5 us per
# uprobe hit, 2-3 hits per event) and the whole harness stays near 15 minutes.
CHURN_PAIRS = 100_000
THREADS = 4
THREAD_PAIRS = 25_000
SQLITE_ROWS = 5_000
PERL_KEYS = 40_000
JQ_RECORDS = 6_000
REPLAY_EVENTS = 50_000_000
REPLAY_STACKS = 4_000
HEAPTRACK_PRINT_PAIRS = 1_000_000
SYM_FILES = 150
SYM_FUNCS_PER_FILE = 40
SYM_ADDRESSES = 20_000


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return (min(values), statistics.median(values), max(values))


def fmt3(s, fmt="{:.2f}", unit=""):
    if s is None:
        return "n/a"
    lo, med, hi = s
    return f"{fmt.format(med)}{unit} ({fmt.format(lo)} – {fmt.format(hi)})"


def human_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024.0
    return str(n)


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.work = os.path.join(self.build, "run")
        os.makedirs(self.work, exist_ok=True)
        self.runs = args.runs
        self.recorder = os.path.join(self.build, "heaptrail", "bin", "heaptrail-record")
        self.analyzer = os.path.join(self.build, "heaptrail", "bin", "heaptrail")
        self.floor = os.path.join(self.build, "bench-floor")
        self.gen_trace = os.path.join(self.build, "gen_trace")
        self.symbench = os.path.join(self.build, "symbench")
        wl = os.path.join(self.build, "workloads")
        self.churn = os.path.join(wl, "churn")
        self.threads = os.path.join(wl, "threads")
        self.stopwatch = os.path.join(wl, "stopwatch")
        self.results = {}
        self.notes = []
        self.loadavg = []

    # ------------------------------------------------------------------ helpers
    def sh(self, cmd, stdin=None, env=None, check=False, timeout=900):
        stdin_f = open(stdin, "rb") if isinstance(stdin, str) else stdin
        try:
            t0 = time.monotonic()
            p = subprocess.run(cmd, stdin=stdin_f if stdin_f is not None else subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=timeout)
            wall = time.monotonic() - t0
        finally:
            if isinstance(stdin, str):
                stdin_f.close()
        out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        if check and p.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed ({p.returncode}):\n{err[-2000:]}")
        return p.returncode, out, err, wall

    @staticmethod
    def parse_counts(text):
        m = re.search(r"allocs=(\d+) frees=(\d+) work_ns=(\d+)", text)
        if not m:
            return None
        return {"calls": int(m.group(1)) + int(m.group(2)), "work_ns": int(m.group(3))}

    @staticmethod
    def parse_summary(text):
        m = re.search(r"heaptrail-record: (\d+) events.*?(\d+) unique stacks(?: \(\d+ incomplete\))?, (\d+) lost", text)
        if not m:
            return None
        return {"events": int(m.group(1)), "stacks": int(m.group(2)), "lost": int(m.group(3))}

    def read_elapsed(self, path, timeout=10.0):
        # Written by stopwatch's helper right after the command exits.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(path) as f:
                    m = re.search(r"elapsed_ns=(\d+)", f.read())
                if m:
                    return int(m.group(1))
            except FileNotFoundError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"stopwatch wrote nothing to {path}")

    def sample_load(self):
        with open("/proc/loadavg") as f:
            self.loadavg.append(float(f.read().split()[0]))

    # ------------------------------------------------------------------ workloads
    def make_sqlite_script(self, rows, path):
        r = random.Random(7)
        words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
                 "juliet", "kilo", "lima", "mike", "november", "oscar", "papa"]
        lines = [
            "CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT);",
            "CREATE TABLE item(id INTEGER PRIMARY KEY, customer INTEGER, name TEXT, grp INTEGER,"
            " price REAL, note TEXT);",
            "BEGIN;",
        ]
        for c in range(200):
            lines.append(f"INSERT INTO customer(name, city) VALUES('{r.choice(words)} {c}', '{r.choice(words)}');")
        for i in range(rows):
            name = " ".join(r.choice(words) for _ in range(r.randint(1, 4)))
            note = "".join(r.choice("abcdefghij ") for _ in range(r.randint(0, 160)))
            lines.append(f"INSERT INTO item(customer, name, grp, price, note) VALUES({r.randint(1, 200)},"
                         f" '{name} {i}', {r.randint(0, 99)}, {r.random() * 100:.2f}, '{note}');")
            if i % 500 == 499:
                lines.append(f"UPDATE item SET price = price * 1.01 WHERE grp = {r.randint(0, 99)};")
                lines.append(f"SELECT count(*), sum(price) FROM item WHERE name LIKE '%{r.choice(words)}%';")
        lines.append("COMMIT;")
        lines.append("CREATE INDEX item_grp ON item(grp);")
        lines.append("CREATE INDEX item_name ON item(name);")
        for q in range(40):
            w = r.choice(words)
            lines.append(f"SELECT c.city, count(*), avg(i.price), max(length(i.note)) FROM item i JOIN customer c"
                         f" ON c.id = i.customer WHERE i.name LIKE '{w}%' GROUP BY c.city ORDER BY 2 DESC;")
            lines.append(f"SELECT grp, group_concat(substr(name, 1, 5), ',') FROM item WHERE grp BETWEEN {q}"
                         f" AND {q + 3} GROUP BY grp;")
        lines.append("DELETE FROM item WHERE grp % 3 = 0;")
        lines.append("SELECT count(*) FROM item;")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def workloads(self):
        script = os.path.join(self.work, "sqlite.sql")
        self.make_sqlite_script(SQLITE_ROWS, script)
        self.sqlite_script = script
        sqlite = shutil.which("sqlite3")
        perl = shutil.which("perl")
        jq = shutil.which("jq")
        self.make_jq_input(JQ_RECORDS, os.path.join(self.work, "jq-input.json"))
        perl_script = ("my %h; for my $i (1.." + str(PERL_KEYS) + ") { $h{\"key$i\"} = [map { $_ * $i } 1..6]; } "
                       "my $n = 0; for my $k (sort keys %h) { $n += scalar @{$h{$k}}; delete $h{$k} if $n % 3; } "
                       "print \"$n\\n\";")
        jq_filter = "[.[] | {id, total: ([.values[]] | add), tags: (.tags | join(\",\"))}] | group_by(.total % 7) | map(length)"
        return [
            {"name": "churn", "cmd": [self.churn, str(CHURN_PAIRS)], "stdin": None, "timing": "work",
             "empty": {"cmd": [self.churn, "1"]},
             "desc": f"churn {CHURN_PAIRS} (1 thread, {CHURN_PAIRS} malloc/free pairs)"},
            {"name": "threads", "cmd": [self.threads, str(THREADS), str(THREAD_PAIRS)], "stdin": None,
             "timing": "work", "empty": {"cmd": [self.threads, str(THREADS), "1"]},
             "desc": f"threads {THREADS} {THREAD_PAIRS} ({THREADS} threads x {THREAD_PAIRS} pairs, 1/16 freed by another thread)"},
            {"name": "sqlite3", "cmd": [sqlite, ":memory:"], "stdin": script, "timing": "stopwatch",
             "empty": {"stdin": "/dev/null"},
             "desc": f"sqlite3 :memory: < script ({SQLITE_ROWS} inserts in one transaction, updates, joins, group-bys, indexes)"},
            {"name": "perl", "cmd": [perl, "-e", perl_script], "stdin": None, "timing": "stopwatch",
             "empty": {"cmd": [perl, "-e", "1"]},
             "desc": f"perl -e (a hash of {PERL_KEYS} keys to 6-element arrays, sorted, partly deleted)"},
            {"name": "jq", "cmd": [jq, "-c", jq_filter, os.path.join(self.work, "jq-input.json")], "stdin": None,
             "timing": "stopwatch", "empty": {"cmd": [jq, "-n", "1"]},
             "desc": f"jq over {JQ_RECORDS} JSON records (projection, sums, string joins, group_by)"},
        ]

    def make_jq_input(self, n, path):
        r = random.Random(11)
        words = ["red", "green", "blue", "amber", "teal", "ochre", "plum", "slate"]
        with open(path, "w") as f:
            json.dump([{"id": i, "name": f"item-{i}", "values": [r.randint(0, 1000) for _ in range(r.randint(1, 8))],
                        "tags": r.sample(words, r.randint(1, 4))} for i in range(n)], f)

    # ------------------------------------------------------------------ probe discovery
    def discover_probes(self, wl):
        """The floor's sites: the *entry* of every function heaptrail-record hooks for
        this workload (a return probe too where the recorder has one), read from `heaptrail
        info` of a recording made with --probe-sites=entry of the workload's empty run.
        The floor stays the cost of probing first instructions, whatever sites the recorder
        itself picks."""
        trace = os.path.join(self.work, f"discover-{wl['name']}.htr")
        empty = dict(wl, **wl["empty"])
        inner = list(empty["cmd"])
        cmd = [self.recorder, "--probe-sites", "entry", "-o", trace, "--"] + inner
        rc, _, err, _ = self.sh(cmd, stdin=empty["stdin"])
        if rc != 0:
            raise RuntimeError(f"discovery recording of {wl['name']} failed: {err[-1000:]}")
        _, out, _, _ = self.sh([self.analyzer, "info", trace], check=True)
        sites = []
        for m in re.finditer(r"^  (\S+) in (\S+): (?:entry|\+\d+) \(.*\), file offset (0x[0-9a-f]+)", out, re.M):
            symbol, path, offset = m.group(1), m.group(2), int(m.group(3), 16)
            sites.append(("uprobe", path, offset))
            if symbol not in ("free", "munmap") and not symbol.startswith("_Zd"):
                sites.append(("uretprobe", path, offset))
        if not sites:
            raise RuntimeError(f"heaptrail info listed no probe sites for {wl['name']}:\n{out[:2000]}")
        path = os.path.join(self.work, f"probes-{wl['name']}.txt")
        with open(path, "w") as f:
            for t, fn, off in sites:
                f.write(f"{t} {fn} {off}\n")
        wl["probes"] = path
        wl["probe_sites"] = sites
        return path

    def chosen_sites(self):
        """symbol -> the probe offset heaptrail-record picks (a C++ program: libc and
        libstdc++ are both hooked)."""
        trace = os.path.join(self.work, "chosen-sites.htr")
        self.sh([self.recorder, "-o", trace, "--", os.path.join(self.build, "workloads", "cxx_noop")], check=True)
        _, out, _, _ = self.sh([self.analyzer, "info", trace], check=True)
        chosen = {}
        for m in re.finditer(r"^  (\S+) in \S+: (entry|\+(\d+)) \(", out, re.M):
            chosen[m.group(1)] = int(m.group(3)) if m.group(3) else 0
        return chosen

    # ------------------------------------------------------------------ one measurement
    def run_mode(self, wl, mode, tag, extra_rec=None, sampler=None):
        """Runs the workload once under `mode` (bare, floor, record, heaptrack).
        Returns a dict with the timing (ns) and what the tool reported."""
        res = {"mode": mode}
        sw_file = os.path.join(self.work, f"sw-{tag}")
        if os.path.exists(sw_file):
            os.unlink(sw_file)
        inner = list(wl["cmd"])
        if wl["timing"] == "stopwatch" and mode != "heaptrack":
            inner = [self.stopwatch, sw_file] + inner
        if mode == "bare":
            cmd = inner
        elif mode == "floor":
            cmd = [self.floor, "--probes", wl["probes"], "--"] + inner
        elif mode == "record":
            trace = os.path.join(self.work, f"{tag}.htr")
            cmd = [self.recorder, "-o", trace] + (extra_rec or []) + ["--"] + inner
            res["trace"] = trace
        elif mode == "heaptrack":
            prefix = os.path.join(self.work, f"{tag}.heaptrack")
            for old in glob.glob(prefix + ".*"):
                os.unlink(old)
            cmd = ["heaptrack", "-o", prefix] + inner
            if wl["timing"] == "stopwatch":
                cmd = [self.stopwatch, sw_file] + cmd
        else:
            raise ValueError(mode)

        if sampler:
            p = subprocess.Popen(cmd, stdin=open(wl["stdin"], "rb") if wl["stdin"] else subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            sampler.start(p.pid)
            out, err = p.communicate(timeout=900)
            sampler.stop()
            rc, out, err = p.returncode, out.decode(errors="replace"), err.decode(errors="replace")
        else:
            rc, out, err, _ = self.sh(cmd, stdin=wl["stdin"])
        if rc != 0:
            raise RuntimeError(f"{mode} run of {wl['name']} failed ({rc}): {shlex.join(cmd)}\n{err[-3000:]}")
        if wl["timing"] == "work":
            c = self.parse_counts(out)
            if not c:
                raise RuntimeError(f"{wl['name']} printed no counts under {mode}: {out[-500:]}")
            res["ns"] = c["work_ns"]
            res["calls"] = c["calls"]
        else:
            res["ns"] = self.read_elapsed(sw_file)
        if mode == "record":
            s = self.parse_summary(err)
            if not s:
                raise RuntimeError(f"no recorder summary: {err[-1000:]}")
            res.update(s)
            res["trace_bytes"] = os.path.getsize(res["trace"])
            res["stderr"] = err.strip().splitlines()[-1]
        if mode == "heaptrack":
            files = glob.glob(os.path.join(self.work, f"{tag}.heaptrack.*"))
            res["heaptrack_file"] = files[0] if files else None
            res["trace_bytes"] = os.path.getsize(files[0]) if files else None
        return res

    # ------------------------------------------------------------------ figure 1, 3, 4
    def figure_overhead(self, wls):
        modes = ["bare", "floor", "record", "heaptrack"]
        data = {wl["name"]: {m: [] for m in modes + ["bare_empty", "heaptrack_empty"]} for wl in wls}
        footprint = Footprint(self)
        for it in range(self.runs):
            self.sample_load()
            for wl in wls:
                order = modes[it % len(modes):] + modes[:it % len(modes)]
                for mode in order:
                    tag = f"{wl['name']}-{mode}-{it}"
                    sampler = footprint if (mode == "record" and wl["name"] == "threads") else None
                    r = self.run_mode(wl, mode, tag, sampler=sampler)
                    data[wl["name"]][mode].append(r)
                    if mode == "heaptrack" and r.get("heaptrack_file") and not (
                            wl["name"] == "churn" and it == 0):
                        os.unlink(r["heaptrack_file"])
                    if mode == "record" and it > 0 and wl["name"] != "churn":
                        os.unlink(r["trace"])
                if True:
                    # heaptrack's fixed costs (its start-up stalls the first allocation;
                    # for sqlite3 the whole command is timed): the same command with
                    # (almost) no work.
                    empty = dict(wl, **wl["empty"])
                    data[wl["name"]]["bare_empty"].append(self.run_mode(empty, "bare", f"{wl['name']}-be-{it}"))
                    r = self.run_mode(empty, "heaptrack", f"{wl['name']}-he-{it}")
                    if r.get("heaptrack_file"):
                        os.unlink(r["heaptrack_file"])
                    data[wl["name"]]["heaptrack_empty"].append(r)
                log(f"overhead run {it + 1}/{self.runs} {wl['name']}: " + ", ".join(
                    f"{m} {data[wl['name']][m][-1]['ns'] / 1e6:.0f} ms" for m in modes))
        self.results["overhead_raw"] = data
        self.results["footprint"] = footprint.result()

    # ------------------------------------------------------------------ profile of the recorder
    def figure_profile(self, wls):
        """Per-program BPF run time (kernel.bpf_stats_enabled) of the recorder and of
        the floor on churn, and the recorder's own CPU time."""
        prof = {}
        try:
            with open("/proc/sys/kernel/bpf_stats_enabled") as f:
                old = f.read().strip()
            with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
                f.write("1")
        except OSError as e:
            self.notes.append(f"BPF statistics unavailable: {e}")
            return
        try:
            for wl in wls:
                if wl["name"] not in ("churn", "threads"):
                    continue
                for mode in ("record", "floor") + (("parts",) if wl["name"] == "churn" else ()):
                    prof[(wl["name"], mode)] = self.profile_run(wl, mode)
        finally:
            with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
                f.write(old)
        self.results["profile"] = {f"{k[0]}/{k[1]}": v for k, v in prof.items()}

    def profile_run(self, wl, mode):
        env = dict(os.environ, BENCH_LINGER_MS="1500")
        trace = os.path.join(self.work, f"profile-{wl['name']}.htr")
        if mode == "record":
            cmd = [self.recorder, "-o", trace, "--"] + wl["cmd"]
        else:
            cmd = [self.floor, "--probes", wl["probes"]] + (["--parts"] if mode == "parts" else []) + ["--"] + wl["cmd"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        # The workload prints its counts, then lingers: read the statistics then.
        line = p.stdout.readline().decode()
        counts = self.parse_counts(line)
        progs = {}
        owner = p.pid
        for prog_id in prog_ids_held_by(owner):
            progs[prog_id] = None
        rc, out, _, _ = self.sh(["bpftool", "prog", "show", "-j"])
        for e in json.loads(out or "[]"):
            if e.get("id") in progs:
                progs[e["id"]] = {"name": e.get("name"), "run_time_ns": e.get("run_time_ns", 0),
                                  "run_cnt": e.get("run_cnt", 0)}
        cpu = proc_cpu_ns(owner)
        out, err = p.communicate(timeout=300)
        byname = {}
        for v in progs.values():
            if v and v["run_cnt"]:
                b = byname.setdefault(v["name"], {"run_time_ns": 0, "run_cnt": 0})
                b["run_time_ns"] += v["run_time_ns"]
                b["run_cnt"] += v["run_cnt"]
        res = {"calls": counts["calls"] if counts else None, "work_ns": counts["work_ns"] if counts else None,
               "programs": byname, "tool_cpu_ns": cpu}
        if mode == "record":
            res["summary"] = self.parse_summary(err.decode(errors="replace"))
        return res

    # ------------------------------------------------------------------ figure 2
    def figure_lossless(self, wl_threads):
        sweep = []
        for n in (1, 2, 4, 8, 16):
            wl = dict(wl_threads, cmd=[self.threads, str(n), str(THREADS * THREAD_PAIRS // n)])
            r = self.run_mode(wl, "record", f"loss-threads{n}")
            r["threads"], r["ring"] = n, "4M"
            r["rate"] = r["calls"] / (r["ns"] / 1e9)
            sweep.append(r)
            os.unlink(r["trace"])
            log(f"lossless: {n} threads, {r['rate']:.0f} events/s, lost {r['lost']}")
        rings = []
        for ring in ("16k", "32k", "64k", "256k", "1M"):
            r = self.run_mode(wl_threads, "record", f"loss-ring{ring}", extra_rec=["--ringbuf-size", ring])
            r["threads"], r["ring"] = THREADS, ring
            r["rate"] = r["calls"] / (r["ns"] / 1e9)
            rings.append(r)
            os.unlink(r["trace"])
            log(f"lossless: ring {ring}, {r['rate']:.0f} events/s, lost {r['lost']}")
        # Paced: a fixed rate, to show the loss (if any) is not rate-limited below the max.
        self.results["lossless"] = {"threads": sweep, "rings": rings}

    # ------------------------------------------------------------------ figure 5
    def figure_replay(self):
        res = {}
        analyzer_ok = os.path.exists(self.analyzer)
        flag = None
        if analyzer_ok:
            _, out, err, _ = self.sh([self.analyzer, "analyze", "--help"])
            for cand in ("--no-symbols", "--no-symbolize", "--no-symbolization", "--no-symbolizer", "--raw"):
                if re.search(re.escape(cand) + r"\b", out + err):
                    flag = cand
                    break
        res["analyzer"] = analyzer_ok
        res["flag"] = flag
        trace = os.path.join(self.work, f"synthetic-{REPLAY_EVENTS}.htr")
        stamp = trace + ".ok"
        if not (os.path.exists(stamp) and os.path.getmtime(stamp) > os.path.getmtime(self.gen_trace)):
            log(f"generating a synthetic trace of {REPLAY_EVENTS} events")
            _, out, _, wall = self.sh([self.gen_trace, trace, str(REPLAY_EVENTS), str(REPLAY_STACKS)], check=True)
            with open(stamp, "w") as f:
                f.write(out)
            log(f"generated in {wall:.1f} s: {out.strip()}")
        with open(stamp) as f:
            res["synthetic"] = f.read().strip()
        res["synthetic_bytes"] = os.path.getsize(trace)
        if analyzer_ok and flag:
            runs = []
            for i in range(self.runs):
                rc, out, err, wall = self.sh(["/usr/bin/time", "-f", "TIME %e %M", self.analyzer, "analyze", trace, flag])
                m = re.search(r"TIME ([\d.]+) (\d+)", err)
                if rc != 0 or not m:
                    res["error"] = err[-1500:]
                    break
                runs.append({"s": float(m.group(1)), "wall": wall, "rss_kib": int(m.group(2))})
                log(f"replay run {i + 1}: {wall:.2f} s, {int(m.group(2)) / 1024:.0f} MiB")
            res["runs"] = runs
            res["output_head"] = out[:1500] if runs else ""
        # heaptrack_print on heaptrack's file of a bigger churn (heaptrack records fast).
        hprefix = os.path.join(self.work, "replay-churn.heaptrack")
        hfiles = glob.glob(hprefix + ".*")
        if not hfiles:
            log(f"recording churn {HEAPTRACK_PRINT_PAIRS} with heaptrack for heaptrack_print")
            self.sh(["heaptrack", "-o", hprefix, self.churn, str(HEAPTRACK_PRINT_PAIRS)], check=True)
            hfiles = glob.glob(hprefix + ".*")
        res["heaptrack_events"] = 2 * (HEAPTRACK_PRINT_PAIRS + 256)
        hp = []
        for i in range(self.runs):
            rc, out, err, wall = self.sh(["/usr/bin/time", "-f", "TIME %e %M", "heaptrack_print", "--print-leaks", "1",
                                          hfiles[0]])
            m = re.search(r"TIME ([\d.]+) (\d+)", err)
            hp.append({"wall": wall, "rss_kib": int(m.group(2)) if m else None})
        res["heaptrack_print"] = hp
        # Same recorded workload for both tools (small: start-up included).
        small = {}
        churn_rec = os.path.join(self.work, "churn-record-0.htr")
        churn_ht = glob.glob(os.path.join(self.work, "churn-heaptrack-0.heaptrack.*"))
        if analyzer_ok and flag and os.path.exists(churn_rec) and churn_ht:
            a = [self.sh([self.analyzer, "analyze", churn_rec, flag])[3] for _ in range(self.runs)]
            h = [self.sh(["heaptrack_print", "--print-leaks", "1", churn_ht[0]])[3] for _ in range(self.runs)]
            small = {"heaptrail_s": a, "heaptrack_print_s": h}
        res["same_workload"] = small
        self.results["replay"] = res

    # ------------------------------------------------------------------ figure 6
    def figure_symbols(self):
        res = {}
        src = os.path.join(self.work, f"symprog-{SYM_FILES}x{SYM_FUNCS_PER_FILE}")
        binary = os.path.join(src, "bigprog")
        if not os.path.exists(binary):
            log(f"generating and compiling a {SYM_FILES * SYM_FUNCS_PER_FILE}-function C++ program (-g)")
            generate_big_program(src, SYM_FILES, SYM_FUNCS_PER_FILE)
            objs = []

            def compile_one(i):
                obj = os.path.join(src, f"unit{i}.o")
                self.sh(["g++", "-std=c++17", "-O1", "-g", "-fno-inline", "-c", os.path.join(src, f"unit{i}.cpp"),
                         "-o", obj], check=True)
                return obj

            with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
                objs = list(ex.map(compile_one, range(SYM_FILES)))
            self.sh(["g++", "-std=c++17", "-O1", "-g", "-fno-inline", "-c", os.path.join(src, "main.cpp"), "-o",
                     os.path.join(src, "main.o")], check=True)
            self.sh(["g++", "-o", binary + ".tmp", os.path.join(src, "main.o")] + objs, check=True)
            os.rename(binary + ".tmp", binary)
        res["binary_bytes"] = os.path.getsize(binary)
        _, out, _, _ = self.sh(["readelf", "-SW", binary])
        debug = 0
        for m in re.finditer(r"\]\s+(\.debug_\w+)\s+\S+\s+\S+\s+\S+\s+([0-9a-f]+)", out):
            debug += int(m.group(2), 16)
        res["debug_bytes"] = debug

        # Addresses: random bytes inside functions, spread over every function symbol.
        _, out, _, _ = self.sh(["nm", "-S", "--defined-only", binary], check=True)
        funcs = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[2] in "TtWw" and int(parts[1], 16) > 0:
                funcs.append((int(parts[0], 16), int(parts[1], 16)))
        funcs = sorted(set(funcs))
        res["functions"] = len(funcs)
        r = random.Random(11)
        addrs = set()
        while len(addrs) < SYM_ADDRESSES:
            start, size = r.choice(funcs)
            addrs.add(start + r.randrange(size))
        addrs = sorted(addrs)
        r.shuffle(addrs)
        segs = load_segments(binary)

        def to_offset(a):
            for vaddr, off, filesz in segs:
                if vaddr <= a < vaddr + filesz:
                    return a - vaddr + off
            raise ValueError(hex(a))

        vfile = os.path.join(self.work, "sym-vaddrs.txt")
        ofile = os.path.join(self.work, "sym-offsets.txt")
        with open(vfile, "w") as f:
            f.write("".join(f"0x{a:x}\n" for a in addrs))
        with open(ofile, "w") as f:
            f.write("".join(f"{to_offset(a):x}\n" for a in addrs))
        res["addresses"] = len(addrs)

        llvm = shutil.which("llvm-symbolizer") or (sorted(glob.glob("/usr/bin/llvm-symbolizer-*")) or [None])[-1]
        res["llvm_symbolizer"] = llvm
        tools = {
            "heaptrail": [self.symbench, binary, ofile, os.path.join(self.work, "sym-heaptrail.txt")],
            "llvm-symbolizer": [llvm, "--obj=" + binary, "-i", "--output-style=JSON", "--demangle"],
            "eu-addr2line": ["eu-addr2line", "-e", binary, "-f", "-C"],
        }
        times = {k: [] for k in tools}
        answers = {}
        inproc = []
        for i in range(self.runs):
            for name, cmd in tools.items():
                stdin = None if name == "heaptrail" else vfile
                rc, out, err, wall = self.sh(cmd, stdin=stdin)
                if rc != 0:
                    raise RuntimeError(f"{name} failed: {err[-1000:]}")
                times[name].append(wall)
                if name == "heaptrail":
                    m = re.search(r"cold_ns=(\d+) warm_ns=(\d+) resolved=(\d+)", out)
                    inproc.append((int(m.group(1)), int(m.group(2)), int(m.group(3))))
                    if i == 0:
                        with open(tools["heaptrail"][3]) as f:
                            answers[name] = parse_symbench(f.read())
                elif i == 0:
                    answers[name] = parse_llvm_json(out) if name == "llvm-symbolizer" else parse_two_line(out)
            log(f"symbolization run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
        res["times"] = times
        res["heaptrail_inprocess"] = inproc
        demangle_leftovers(answers)
        res["compare"] = compare_answers(answers, len(addrs))
        self.results["symbols"] = res

    # ------------------------------------------------------------------ report
    def environment(self):
        env = {}
        cpu = "unknown"
        try:
            with open("/proc/cpuinfo") as f:
                m = re.search(r"model name\s*:\s*(.+)", f.read())
                cpu = m.group(1).strip() if m else cpu
        except OSError:
            pass
        with open("/proc/meminfo") as f:
            mem_kib = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
        env["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu}), {mem_kib / 1048576:.1f} GiB RAM"
        virt = self.sh(["systemd-detect-virt"])[1].strip() if shutil.which("systemd-detect-virt") else ""
        if virt and virt != "none":
            env["machine"] += f", virtualized ({virt})"
        env["kernel"] = platform.release()
        rc, out, _, _ = self.sh(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"])
        commit = out.strip() if rc == 0 else "unknown"
        rc, out, _, _ = self.sh(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"])
        if rc == 0 and out.strip():
            commit += " + uncommitted changes"
        env["commit"] = commit
        vers = {}
        for name, cmd in (("heaptrack", ["heaptrack", "--version"]),
                          ("sqlite3", ["sqlite3", "--version"]),
                          ("llvm-symbolizer", ["llvm-symbolizer", "--version"]),
                          ("eu-addr2line", ["eu-addr2line", "--version"]),
                          ("clang", ["clang", "--version"]),
                          ("libbpf", ["pkg-config", "--modversion", "libbpf"])):
            try:
                rc, out, err, _ = self.sh(cmd)
                text = (out or err).strip().splitlines()
                line = next((l for l in text if re.search(r"\d+\.\d+", l)), text[0] if text else "")
                vers[name] = line.strip()
            except (OSError, IndexError):
                vers[name] = "missing"
        env["versions"] = vers
        env["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return env


# ---------------------------------------------------------------------- footprint sampler
class Footprint:
    """Samples heaptrail-record's /proc status and the memlock of its BPF maps (fdinfo)
    every 20 ms while it records; keeps the peaks."""

    def __init__(self, bench):
        self.bench = bench
        self.runs = []
        self.maps_detail = None

    def start(self, pid):
        self.pid = pid
        self.stop_flag = False
        self.cur = {"vmhwm_kib": 0, "rss_anon_kib": 0, "rss_file_kib": 0, "maps_bytes": 0, "maps": {}}
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        t0 = time.monotonic()
        last_smaps = 0.0
        detailed = self.maps_detail is not None
        while not self.stop_flag:
            try:
                st = open(f"/proc/{self.pid}/status").read()
                for key, field in (("vmhwm_kib", "VmHWM"), ("rss_anon_kib", "RssAnon"), ("rss_file_kib", "RssFile")):
                    m = re.search(field + r":\s+(\d+)", st)
                    if m:
                        self.cur[key] = max(self.cur[key], int(m.group(1)))
                maps = {}
                fddir = f"/proc/{self.pid}/fd"
                for fd in os.listdir(fddir):
                    try:
                        if os.readlink(os.path.join(fddir, fd)) != "anon_inode:bpf-map":
                            continue
                        info = open(f"/proc/{self.pid}/fdinfo/{fd}").read()
                    except OSError:
                        continue
                    mid = re.search(r"map_id:\s+(\d+)", info)
                    ml = re.search(r"memlock:\s+(\d+)", info)
                    if mid and ml:
                        maps[int(mid.group(1))] = int(ml.group(1))
                total = sum(maps.values())
                if total >= self.cur["maps_bytes"]:
                    self.cur["maps_bytes"] = total
                    self.cur["maps"] = maps
                if time.monotonic() - last_smaps > 0.2:
                    last_smaps = time.monotonic()
                    br = smaps_breakdown(self.pid)
                    if br and sum(br.values()) >= sum(self.cur.get("smaps", {}).values()):
                        self.cur["smaps"] = br
                if not detailed and maps and time.monotonic() - t0 > 1.0:
                    detailed = True
                    rc, out, _, _ = self.bench.sh(["bpftool", "map", "show", "-j"])
                    if rc == 0:
                        self.maps_detail = [
                            {"id": e["id"], "name": e.get("name", ""), "type": e.get("type", ""),
                             "max_entries": e.get("max_entries"), "bytes_memlock": e.get("bytes_memlock")}
                            for e in json.loads(out) if e["id"] in maps]
            except (FileNotFoundError, ProcessLookupError):
                break
            except OSError:
                pass
            time.sleep(0.02)

    def stop(self):
        self.stop_flag = True
        self.thread.join()
        self.runs.append(dict(self.cur))

    def result(self):
        return {"runs": self.runs, "maps_detail": self.maps_detail}


def smaps_breakdown(pid):
    """Resident KiB of a process by kind of mapping, from /proc/PID/smaps."""
    out = {}
    try:
        text = open(f"/proc/{pid}/smaps").read()
    except OSError:
        return None
    name = None
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if re.match(r"^[0-9a-f]+-[0-9a-f]+$", parts[0]):
            path = " ".join(parts[5:]) if len(parts) > 5 else ""
            if path == "":
                name = "anonymous (malloc arenas, mmap)"
            elif path == "[heap]":
                name = "[heap] (brk)"
            elif "bpf-map" in path:
                name = "BPF map mmap (ring buffer)"
            elif "perf_event" in path:
                name = "perf buffers (mapping watcher)"
            elif path.startswith("["):
                name = path
            else:
                name = "file: " + os.path.basename(path)
        elif parts[0] == "Rss:" and name:
            out[name] = out.get(name, 0) + int(parts[1])
    return {k: v for k, v in out.items() if v > 0}


def prog_ids_held_by(pid):
    """The BPF programs a process holds (its own fds: never another user's)."""
    ids = set()
    fddir = f"/proc/{pid}/fdinfo"
    try:
        for fd in os.listdir(fddir):
            try:
                m = re.search(r"^prog_id:\s+(\d+)", open(os.path.join(fddir, fd)).read(), re.M)
            except OSError:
                continue
            if m:
                ids.add(int(m.group(1)))
    except OSError:
        pass
    return sorted(ids)


def proc_cpu_ns(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        return ticks * 1e9 / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return None


def load_segments(binary):
    out = subprocess.run(["readelf", "-lW", binary], stdout=subprocess.PIPE, check=True).stdout.decode()
    segs = []
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == "LOAD":
            segs.append((int(parts[2], 16), int(parts[1], 16), int(parts[4], 16)))
    return segs


def generate_big_program(src, files, per_file):
    """A C++ program with `files` translation units of `per_file` functions each: real
    control flow over several lines, namespaces, classes, std::vector and std::string
    (so the DWARF carries the usual template instances), calls across units."""
    os.makedirs(src, exist_ok=True)
    r = random.Random(5)
    with open(os.path.join(src, "decls.h"), "w") as f:
        f.write("#pragma once\n#include <cstdint>\n#include <string>\n#include <vector>\n")
        for i in range(files):
            f.write(f"namespace unit{i} {{ std::uint64_t entry(std::uint64_t x, std::vector<std::uint64_t>& acc); }}\n")
    for i in range(files):
        lines = ['#include "decls.h"', "#include <algorithm>", "#include <map>", "", f"namespace unit{i} {{", "",
                 "struct Counter {", "  std::map<std::string, std::uint64_t> seen;",
                 "  std::uint64_t bump(const std::string& key, std::uint64_t by) {",
                 "    auto& v = seen[key];", "    v += by;", "    return v;", "  }", "};", ""]
        for j in range(per_file):
            callee = f"f{j - 1}(x + {j}, acc)" if j > 0 else f"static_cast<std::uint64_t>(acc.size()) + x"
            kind = r.randrange(4)
            lines.append(f"__attribute__((noinline)) std::uint64_t f{j}(std::uint64_t x, std::vector<std::uint64_t>& acc) {{")
            if kind == 0:
                lines += [f"  std::uint64_t y = x * {r.randrange(3, 999)}u + {j}u;",
                          "  if (y % 3 == 0) {", "    acc.push_back(y);", "  } else {", f"    y ^= {r.randrange(1, 1 << 30)}u;",
                          "  }", f"  return y + {callee};"]
            elif kind == 1:
                lines += ["  std::uint64_t sum = 0;", f"  for (std::uint64_t k = 0; k < (x & 7); ++k) {{",
                          f"    sum += k * {r.randrange(2, 50)}u;", "    if (sum > 1000) break;", "  }",
                          "  acc.push_back(sum);", f"  return sum + {callee};"]
            elif kind == 2:
                lines += [f"  std::string s = std::to_string(x) + \"-{i}-{j}\";", "  Counter c;",
                          "  std::uint64_t v = c.bump(s, x);", "  if (s.size() > 6) {", "    v += s.size();", "  }",
                          f"  return v + {callee};"]
            else:
                lines += ["  std::vector<std::uint64_t> tmp(acc.begin(), acc.end());",
                          "  std::sort(tmp.begin(), tmp.end());", "  std::uint64_t m = tmp.empty() ? x : tmp.back();",
                          "  switch (m & 3) {", "  case 0: m += 1; break;", "  case 1: m *= 3; break;",
                          "  default: m ^= 0x55; break;", "  }", f"  return m + {callee};"]
            lines += ["}", ""]
        nxt = f"unit{(i + 1) % files}::entry(x / 2, acc)" if i + 1 < files else "x"
        lines += ["std::uint64_t entry(std::uint64_t x, std::vector<std::uint64_t>& acc) {",
                  f"  if (x == 0) return 0;", f"  return f{per_file - 1}(x, acc) + {nxt};", "}", "",
                  f"}}  // namespace unit{i}", ""]
        with open(os.path.join(src, f"unit{i}.cpp"), "w") as f:
            f.write("\n".join(lines))
    with open(os.path.join(src, "main.cpp"), "w") as f:
        f.write('#include "decls.h"\n#include <cstdio>\nint main(int argc, char**) {\n'
                "  std::vector<std::uint64_t> acc;\n"
                '  std::printf("%llu\\n", (unsigned long long)unit0::entry(argc, acc));\n  return 0;\n}\n')


# An answer is the chain of (function, file, line) at one address, inlined calls first (one
# frame when the tool does not expand inlines).

def parse_two_line(out):
    """eu-addr2line: 'function' then 'file:line[:col]' per address."""
    lines = [l for l in out.splitlines() if l.strip() != ""]
    res = []
    for k in range(0, len(lines) - 1, 2):
        fn = lines[k].strip().split(" inlined at ")[0]  # eu-addr2line names the inlined callee
        loc = lines[k + 1].strip()
        m = re.match(r"(.*?):(\d+)(?::\d+)?$", loc)
        file, line = (m.group(1), int(m.group(2))) if m else (loc, 0)
        res.append([(norm_fn(fn), file if file not in ("??", "") else "", line)])
    return res


def parse_llvm_json(out):
    """llvm-symbolizer -i --output-style=JSON: one object per address."""
    res = []
    for l in out.splitlines():
        if not l.strip():
            continue
        frames = json.loads(l)["Symbol"]
        res.append([(norm_fn(f["FunctionName"]), f["FileName"] if f["FileName"] not in ("??", "") else "",
                     int(f["Line"])) for f in frames])
    return res


def demangle_leftovers(answers):
    """llvm-symbolizer 14 leaves some long template names mangled: demangle those with
    c++filt so that only real differences count."""
    for tool, chains in answers.items():
        idx = [(i, k) for i, c in enumerate(chains) for k, f in enumerate(c) if f[0].startswith("_Z")]
        if not idx:
            continue
        p = subprocess.run(["c++filt"], input="\n".join(chains[i][k][0] for i, k in idx).encode(),
                           stdout=subprocess.PIPE)
        for (i, k), name in zip(idx, p.stdout.decode().splitlines()):
            f = chains[i][k]
            chains[i][k] = (norm_fn(name), f[1], f[2])


def parse_symbench(text):
    res = []
    for l in text.splitlines():
        parts = l.split("\t")[1:]
        res.append([(norm_fn(parts[k]), parts[k + 1], int(parts[k + 2])) for k in range(0, len(parts) - 2, 3)])
    return res


def norm_fn(fn):
    fn = fn.strip()
    if fn in ("??", ""):
        return ""
    return re.sub(r"\s+", "", fn)


def physical(chain):
    """What a tool that does not expand inlines prints: the function the code belongs to,
    and the line table's file (base name) and line."""
    if not chain:
        return ("", "", 0)
    return (chain[-1][0], os.path.basename(chain[0][1]), chain[0][2])


def compare_answers(answers, n):
    out = {"counts": {k: len(v) for k, v in answers.items()}}
    ref = answers.get("llvm-symbolizer", [])
    out["inlined"] = sum(1 for c in ref if len(c) > 1)
    for other in ("heaptrail", "eu-addr2line"):
        a = answers.get(other, [])
        fn_mis, line_mis, chain_mis, examples = 0, 0, 0, []
        for i in range(min(len(a), len(ref))):
            mine, theirs = physical(a[i]), physical(ref[i])
            if mine[0] != theirs[0]:
                fn_mis += 1
            if mine[1:] != theirs[1:]:
                line_mis += 1
            # Every frame of the inline chain, full paths.
            if a[i] != ref[i]:
                chain_mis += 1
                if len(examples) < 5:
                    examples.append({"index": i, other: a[i], "llvm-symbolizer": ref[i]})
        out[other] = {"function_mismatches": fn_mis, "file_line_mismatches": line_mis,
                      "chain_mismatches": chain_mis if other == "heaptrail" else None,
                      "compared": min(len(a), len(ref)), "examples": examples}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", required=True, help="the harness build directory")
    ap.add_argument("--out", default=os.path.join(REPO, "BENCHMARKS.md"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default="overhead,lossless,profile,replay,symbols,sites,lifecycle,bystander",
                    help="comma-separated figures to run (the report marks the others as not run)")
    ap.add_argument("--command", default="sudo tools/bench/run.sh", help="the command shown in the report")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check the harness itself works")
    args = ap.parse_args()
    if args.quick:
        global CHURN_PAIRS, THREAD_PAIRS, SQLITE_ROWS, REPLAY_EVENTS, HEAPTRACK_PRINT_PAIRS, SYM_FILES, SYM_ADDRESSES
        global PERL_KEYS, JQ_RECORDS
        CHURN_PAIRS, THREAD_PAIRS, SQLITE_ROWS, PERL_KEYS, JQ_RECORDS = 5000, 1250, 300, 2000, 1000
        REPLAY_EVENTS, HEAPTRACK_PRINT_PAIRS = 1_000_000, 50_000
        SYM_FILES, SYM_ADDRESSES = 10, 2000
    if os.geteuid() != 0:
        sys.exit("bench.py: needs root (BPF)")
    b = Bench(args)
    only = set(args.only.split(","))
    t0 = time.monotonic()
    b.results["env"] = b.environment()
    wls = b.workloads()
    b.workloads_list = wls
    b.bystander_pairs = CHURN_PAIRS
    if only & {"overhead", "profile"}:
        for wl in wls:
            b.discover_probes(wl)
            log(f"{wl['name']}: the recorder attaches {len(wl['probe_sites'])} uprobes")
        b.results["probes"] = {wl["name"]: wl["probe_sites"] for wl in wls}
    if "overhead" in only:
        b.figure_overhead(wls)
    if "profile" in only:
        b.figure_profile(wls)
    if "lossless" in only:
        b.figure_lossless(wls[1])
    if "replay" in only:
        b.figure_replay()
    if "symbols" in only:
        b.figure_symbols()
    if "sites" in only:
        import sites
        log("probe-site costs (bench-site-cost)")
        b.results["sites"] = sites.measure(os.path.join(b.build, "bench-site-cost"), rounds=min(b.runs, 5))
        b.results["sites"]["chosen"] = b.chosen_sites()
    if "lifecycle" in only or "bystander" in only:
        import lifecycle
        if "lifecycle" in only:
            b.results["lifecycle"] = lifecycle.measure(b)
        if "bystander" in only:
            b.results["bystander"] = lifecycle.bystander(b)
    b.results["elapsed_s"] = time.monotonic() - t0
    b.results["loadavg"] = b.loadavg
    b.results["workloads"] = {wl["name"]: wl["desc"] for wl in wls}
    b.results["sizes"] = {"churn_pairs": CHURN_PAIRS, "heaptrack_print_pairs": HEAPTRACK_PRINT_PAIRS,
                          "replay_events": REPLAY_EVENTS}
    with open(os.path.join(b.work, "results.json"), "w") as f:
        json.dump(b.results, f, indent=1, default=str)
    import report
    report.write(b.results, args.out, args.command, only)
    log(f"done in {b.results['elapsed_s'] / 60:.1f} min; wrote {args.out}")


if __name__ == "__main__":
    main()
