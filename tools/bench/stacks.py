#!/usr/bin/python3.11
"""Stacks of stock Debian programs, heaptrail next to heaptrack 1.4 (issue 10).

For each program both tools record the same command. heaptrack runs with --raw, and this
script reads its raw data file itself: `m` lines (module path, load base, PT_LOAD ranges),
`t` lines (trace tree: instruction pointer, parent node), `+`/`-` (allocation: size, trace
node, pointer / free: pointer). The allocations never freed, grouped by trace node, are
heaptrack's leak sites; each site's stack is its list of instruction pointers, innermost
first, each turned into (module file name, file offset) through the module's load base and
its ELF program headers. heaptrail's stacks come from `heaptrail analyze --format json`
(every outstanding stack; each frame has module and file offset), one physical frame per
return address (inline frames, which heaptrail's JSON adds, are not counted).

Normalisation: heaptrack 1.4 (libunwind's unw_backtrace) records every frame as its return
address minus 1 (checked: jq's _start frame, __libc_start_call_main), heaptrail the return
address itself, so 1 is added to heaptrack's offsets and they are then compared exactly (the
script counts how many unmatched leaves would match one byte off, as a check). Modules are
compared by the base name of the file with symbolic links resolved (heaptrack names
libjq.so.1, heaptrail the mapped file libjq.so.1.0.4). heaptrack's own preload library
frames at the top (libheaptrack_*.so), if any, are dropped; heaptrack keeps at most 64
frames (62 after its own), so deeper stacks are cut on its side. heaptrack's preload library
also wraps dlopen: its frames in the middle of a stack are dropped too. heaptrail probes
operator new itself, so heaptrack's innermost frames inside operator new / new[] (calling
malloc) are dropped: both stacks then start at the caller of new.

Per leak site: heaptrail's outstanding stacks with the same leaf (module, offset) are the
candidates, and the one sharing the longest innermost run of frames is compared: same
frames, same module sequence (consecutive frames of one module counted once), deeper, equal
or shallower, and where the two first differ. Per program: unique stacks in two heaptrail
runs, stacks marked incomplete, lost events, the unwind tables' memory, and how many of
heaptrail's frames (outstanding stacks, run 1) are not preceded by a call instruction in
their file (x86-64 call rel32 / call r/m64): such a frame cannot be a return address.

  sudo /usr/bin/python3.11 tools/bench/stacks.py --build build [--mode auto|cfi|fp]
      [--ringbuf-size 64M] [--only jq,git] [--details DIR]

--details DIR writes one TSV per program (every site) and keeps the traces there.
Needs root, heaptrack (1.4, with heaptrack_interpret for function names), zstd, jq,
sqlite3, perl, git, python3.11, xz, clang++.
"""
import argparse
import collections
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HEAPTRACK_INTERPRET = "/usr/lib/heaptrack/libexec/heaptrack_interpret"
HEAPTRACK_MAX_FRAMES = 62  # Trace::MAX_SIZE 64, minus the 2 frames heaptrack skips
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GIT_COMMIT = "c2cce65"  # a fixed commit of this repository: the same history on every run

SOURCE_CPP = r"""
#include <algorithm>
#include <map>
#include <string>
#include <vector>
std::map<std::string, std::vector<int>> index_words(const std::vector<std::string>& words) {
  std::map<std::string, std::vector<int>> out;
  for (size_t i = 0; i < words.size(); ++i) out[words[i]].push_back(static_cast<int>(i));
  return out;
}
int main() {
  std::vector<std::string> w{"a", "b", "a"};
  auto m = index_words(w);
  std::sort(w.begin(), w.end());
  return static_cast<int>(m.size());
}
"""

PYTHON_LONG = r"""
import collections, decimal, json, sqlite3, threading, time
def work(n):
    deadline = time.monotonic() + 6
    rows = []
    while time.monotonic() < deadline:
        d = collections.Counter(str(i) * 3 for i in range(n))
        rows.append(json.dumps(dict(d))[:64] + str(decimal.Decimal(n) / 7))
        time.sleep(0.05)
    return rows
threads = [threading.Thread(target=work, args=(2000 + t,)) for t in range(3)]
for t in threads: t.start()
for t in threads: t.join()
db = sqlite3.connect(":memory:")
db.execute("create table t(a)")
db.executemany("insert into t values (?)", [(i,) for i in range(1000)])
print(db.execute("select count(*) from t").fetchone()[0])
"""


class Workload:
    def __init__(self, cmd, kind, stdin=None, prepare=None):
        self.cmd, self.kind, self.stdin, self.prepare = cmd, kind, stdin, prepare


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
                  "select b, count(*) from t group by substr(b, 1, 5);\n"
                  # .exit with a status calls exit() with the database open: its cache is outstanding
                  ".exit 3\n")
    db = os.path.join(tmp, "bench.sqlite")

    def fresh_db():
        if os.path.exists(db):
            os.unlink(db)

    blob = os.path.join(tmp, "blob.bin")
    with open(blob, "wb") as out:
        out.write(os.urandom(1 << 20) + b"heaptrail " * 300000)
    source = os.path.join(tmp, "index_words.cpp")
    with open(source, "w") as out:
        out.write(SOURCE_CPP)
    return {
        # jq 1.6 leaks the result of ltrimstr with a non-string argument, and sub()'s regex matches
        "jq": Workload(["/usr/bin/jq", "-c", '[.[] | .name | sub("n"; "m") | ltrimstr(1)] | length', data], "C"),
        "sqlite3": Workload(["/usr/bin/sqlite3", db], "C", stdin=sql, prepare=fresh_db),
        "perl": Workload(["/usr/bin/perl", "-e",
                          "my %h; for my $i (1..200000) { push @{$h{$i % 1000}}, $i } "
                          "my @k = sort { $a <=> $b } keys %h; print scalar(@k), \"\\n\";"], "C"),
        "git": Workload(["/usr/bin/git", "-C", REPO, "--no-pager", "log", "-n", "40", "--stat", GIT_COMMIT], "C"),
        "python3.11": Workload(["/usr/bin/python3.11", "-c", PYTHON_LONG], "C, 4 threads, long-running (6 s)"),
        "xz": Workload(["/usr/bin/xz", "-T2", "-6", "-k", "-c", blob], "C, 2 compression threads"),
        "clang++": Workload(["/usr/bin/clang++", "-std=c++17", "-O1", "-c", source, "-o", os.path.join(tmp, "index_words.o")],
                            "C++ (libLLVM, libclang-cpp)"),
    }


def run(cmd, stdin=None, **kw):
    with open(stdin or os.devnull, "rb") as inp:
        return subprocess.run(cmd, stdin=inp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              errors="replace", **kw)


# --- modules: file offsets of addresses -------------------------------------------------

class ElfLoads:
    """PT_LOAD segments of an ELF file: turns a virtual address (ip - load base) into a file offset."""
    cache = {}

    @classmethod
    def of(cls, path):
        if path not in cls.cache:
            cls.cache[path] = cls._read(path)
        return cls.cache[path]

    @staticmethod
    def _read(path):
        try:
            with open(path, "rb") as f:
                head = f.read(64)
                if head[:4] != b"\x7fELF" or head[4] != 2:
                    return []
                phoff, = struct.unpack_from("<Q", head, 32)
                phentsize, phnum = struct.unpack_from("<HH", head, 54)
                f.seek(phoff)
                table = f.read(phentsize * phnum)
        except OSError:
            return []
        loads = []
        for i in range(phnum):
            p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from("<IIQQQQQQ", table, i * phentsize)
            if p_type == 1:
                loads.append((p_vaddr, p_filesz, p_offset))
        return loads

    @classmethod
    def file_offset(cls, path, vaddr):
        for start, size, offset in cls.of(path):
            if start <= vaddr < start + size:
                return offset + (vaddr - start)
        return None


class CallSites:
    """Whether the bytes before a return address are a call instruction (x86-64): a frame
    that is not after a call cannot be a return address (issue 10: never emit one)."""
    files = {}

    @classmethod
    def after_call(cls, path, offset):
        if not path or not isinstance(offset, int) or offset < 8 or path.startswith("["):
            return None
        if path not in cls.files:
            try:
                with open(path, "rb") as f:
                    cls.files[path] = f.read()
            except OSError:
                cls.files[path] = None
        data = cls.files[path]
        if data is None or offset > len(data):
            return None
        before = data[offset - 8:offset]
        if before[-5] == 0xE8:  # call rel32
            return True
        for length in (2, 3, 4, 6, 7):  # call r/m64: ff /2, with its ModRM (+ SIB, displacement)
            if before[-length] != 0xFF:
                continue
            modrm = before[-length + 1]
            if (modrm >> 3) & 7 != 2:
                continue
            mod, rm = modrm >> 6, modrm & 7
            size = 2
            if mod != 3 and rm == 4:
                size += 1
                if mod == 0 and length >= 3 and before[-length + 2] & 7 == 5:
                    size += 4
            if mod == 0 and rm == 5:
                size += 4
            size += {1: 1, 2: 4}.get(mod, 0)
            if size == length:
                return True
        return False


# --- heaptrack's raw data ----------------------------------------------------------------

class SizedLine:
    """A raw line of file version 3: strings are written as '<hex length> <bytes>'."""

    def __init__(self, text):
        self.text, self.pos = text, 2

    def token(self):
        end = self.text.find(" ", self.pos)
        end = len(self.text) if end < 0 else end
        tok, self.pos = self.text[self.pos:end], end + 1
        return tok

    def string(self):
        n = int(self.token(), 16)
        s, self.pos = self.text[self.pos:self.pos + n], self.pos + n + 1
        return s

    def numbers(self):
        return [int(t, 16) for t in self.text[self.pos:].split()]


NUMERIC_LINES = {"t": 2, "+": 3, "-": 1}  # raw line type: number of hex fields


def read_heaptrack_raw(path):
    """Leak sites of a raw heaptrack file: {trace node: (bytes, count, [(module, offset, ip)...])}."""
    exe = ""
    modules = []  # current (start, end, path, base)
    nodes = [None]  # index -> (ip, parent, module path or None, file offset or ip)
    live = {}
    proc = subprocess.Popen(["zstd", "-dc", path], stdout=subprocess.PIPE, text=True, errors="replace")
    for line in proc.stdout:
        line = line.rstrip("\n")
        mode = line[:1] if line[1:2] == " " else ""
        if mode in NUMERIC_LINES:
            try:
                fields = [int(t, 16) for t in line[2:].split()]
            except ValueError:
                fields = []
            if len(fields) != NUMERIC_LINES[mode]:
                continue  # a continuation of the command line ('X'), which may hold newlines
        if mode == "t":
            ip, parent = fields
            module, offset = None, ip
            for start, end, mpath, base in modules:
                if start <= ip < end:
                    module = mpath
                    # heaptrack stores return address - 1: back to the return address
                    offset = ElfLoads.file_offset(mpath, ip + 1 - base)
                    offset = ip + 1 - base if offset is None else offset
                    break
            nodes.append((ip, parent, module, offset))
        elif mode == "+":
            size, node, ptr = fields
            live[ptr] = (size, node)
        elif mode == "-":
            live.pop(fields[0], None)
        elif mode == "m":
            sl = SizedLine(line)
            name = sl.string()
            if name == "-":
                modules = []
                continue
            name = exe if name == "x" else name
            nums = sl.numbers()
            base = nums[0]
            for vaddr, size in zip(nums[1::2], nums[2::2]):
                modules.append((base + vaddr, base + vaddr + size, name, base))
        elif mode == "x":
            exe = SizedLine(line).string()
    proc.wait()
    sites = {}
    for size, node in live.values():
        b, c = sites.get(node, (0, 0))
        sites[node] = (b + size, c + 1)
    result = {}
    for node, (b, c) in sites.items():
        frames = []
        while node:
            ip, parent, module, offset = nodes[node]
            frames.append((module, offset, ip))
            node = parent
        # heaptrack's preload library also wraps dlopen and friends: its frames, wherever they
        # are, exist only under heaptrack
        frames = [f for f in frames if not (f[0] and os.path.basename(f[0]).startswith("libheaptrack"))]
        result[len(result)] = (b, c, frames)
    return result


def heaptrack_names(raw):
    """Function names heaptrack_interpret gives each instruction pointer (for the divergence report)."""
    names = {}
    if not os.access(HEAPTRACK_INTERPRET, os.X_OK):
        return names
    dec = subprocess.Popen(["zstd", "-dc", raw], stdout=subprocess.PIPE)
    interp = subprocess.Popen([HEAPTRACK_INTERPRET], stdin=dec.stdout, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, errors="replace")
    dec.stdout.close()
    strings = [""]
    for line in interp.stdout:
        line = line.rstrip("\n")
        if line.startswith("s "):
            strings.append(SizedLine(line).string())
        elif line.startswith("i "):
            fields = [int(t, 16) for t in line[2:].split()]
            if len(fields) >= 3 and 0 < fields[2] < len(strings):
                names[fields[0]] = strings[fields[2]]
    interp.wait()
    dec.wait()
    return names


def heaptrack(wl, tmp, name):
    prefix = os.path.join(tmp, "ht." + name)
    if wl.prepare:
        wl.prepare()
    r = run(["heaptrack", "--raw", "-o", prefix] + wl.cmd, stdin=wl.stdin)
    raw = prefix + ".raw.zst"
    if not os.path.exists(raw):
        sys.exit("heaptrack wrote nothing for %s: %s" % (name, r.stderr[-500:]))
    return read_heaptrack_raw(raw), heaptrack_names(raw)


# --- heaptrail ---------------------------------------------------------------------------

def physical_frames(entries):
    """JSON frames -> [(module, offset, address, function)]: the one non-inlined entry per return address."""
    out = []
    for e in entries:
        if e.get("inlined"):
            continue
        out.append((e["module"], e["offset"], int(e["address"], 16), e.get("function")))
    return out


def heaptrail(build, wl, tmp, name, mode, run_index, ringbuf):
    trace = os.path.join(tmp, "%s.%d.htr" % (name, run_index))
    if wl.prepare:
        wl.prepare()
    started = time.monotonic()
    extra = ["--ringbuf-size", ringbuf] if ringbuf else []
    r = run([os.path.join(build, "bin/heaptrail-record"), "--stack-mode", mode] + extra + ["-o", trace, "--"] + wl.cmd,
            stdin=wl.stdin)
    seconds = time.monotonic() - started
    summary = next((l for l in r.stderr.splitlines() if "unique stacks" in l), None)
    if summary is None or not os.path.exists(trace):
        sys.exit("heaptrail-record failed on %s: %s" % (name, r.stderr[-800:]))
    unique = int(re.search(r"(\d+) unique stacks", summary).group(1))
    incomplete = re.search(r"\((\d+) incomplete\)", summary)
    lost = int(re.search(r"(\d+) lost", summary).group(1))
    info = run([os.path.join(build, "bin/heaptrail"), "info", trace]).stdout
    tables = re.search(r"unwind tables of (\d+) files, ([^ ]+ \S+) \(BPF maps ([^)]+)\)", info)
    an = run([os.path.join(build, "bin/heaptrail"), "analyze", trace, "--format", "json", "--top", "0",
              "--no-default-suppressions", "--no-debuginfod", "--quiet"])
    if an.returncode != 0:
        sys.exit("heaptrail analyze failed on %s: %s" % (name, an.stderr[-800:]))
    stacks = []
    outstanding = in_incomplete = 0
    frames_checked = not_after_call = 0
    for leak in json.loads(an.stdout)["leaks"]:
        frames = physical_frames(leak["frames"])
        stacks.append((frames, bool(leak.get("stack_incomplete")), leak["bytes"]))
        for module, offset, _, _ in frames:
            verdict = CallSites.after_call(module, offset)
            if verdict is not None:
                frames_checked += 1
                not_after_call += not verdict
        outstanding += leak["count"]
        in_incomplete += leak["count"] if leak.get("stack_incomplete") else 0
    return {
        "stacks": stacks,
        "unique": unique,
        "incomplete": int(incomplete.group(1)) if incomplete else 0,
        "lost": lost,
        "frames_checked": frames_checked,
        "not_after_call": not_after_call,
        "outstanding_allocations": outstanding,
        "incomplete_allocations": in_incomplete,
        "seconds": seconds,
        "tables": "%s files, %s" % tables.groups()[:2] if tables else "none",
    }


# --- comparison --------------------------------------------------------------------------

def module_name(path, cache={}):
    if path not in cache:
        cache[path] = os.path.basename(os.path.realpath(path)) if path else "?"
    return cache[path]


def key(module, offset):
    return (module_name(module), offset)


def module_runs(frames):
    seq = []
    for module, _ in frames:
        if not seq or seq[-1] != module:
            seq.append(module)
    return seq


def common_prefix(a, b):
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


def short_name(name):
    """A C++ name without template arguments and parameters: the table stays readable."""
    if not name:
        return name
    out, depth = [], 0
    for ch in name:
        if ch == "<":
            depth += 1
            if depth == 1:
                out.append("<>")
        elif ch == ">":
            depth = max(depth - 1, 0)
        elif depth == 0:
            out.append(ch)
    text = "".join(out)
    return text[:text.index("(")] if "(" in text and not text.startswith("(") else text


def describe(frame_key, name):
    name = short_name(name)
    module, offset = frame_key
    text = "%s+0x%x" % (module, offset) if isinstance(offset, int) else "%s+?" % module
    return text + (" " + name if name else "")


class Site:
    def __init__(self, **kw):
        self.__dict__.update(kw)


ALLOCATOR_WRAPPERS = re.compile(r"^operator new(\[\])?\(")
RELATIONS = ["identical", "longer", "cut short", "differs"]


def relation(ours, theirs):
    """0 identical, 1 heaptrack's stack is a prefix of heaptrail's (heaptrail goes on), 2 heaptrail's
    is a prefix of heaptrack's (heaptrail stops early), 3 they differ at some frame."""
    shared = common_prefix(ours, theirs)
    if shared == len(ours) == len(theirs):
        return 0
    if shared == len(theirs):
        return 1
    if shared == len(ours):
        return 2
    return 3


def preference(ours, theirs):
    # The same stack first, then one that agrees as far as either goes (the same call path, one
    # side cut), and only then the one sharing the most innermost frames.
    return (-relation(ours, theirs), common_prefix(ours, theirs), len(ours))


def compare(ht_sites, ht_names, ours):
    by_leaf = collections.defaultdict(list)
    for frames, incomplete, _ in ours:
        keys = [key(m, o) for m, o, _, _ in frames]
        if keys:
            by_leaf[keys[0]].append((keys, frames, incomplete))
    results = []
    off_by_one = 0
    for _, (bytes_, count, frames) in sorted(ht_sites.items(), key=lambda kv: -kv[1][0]):
        # heaptrail probes operator new itself (its frame 0 is new's caller); heaptrack sees the
        # malloc that operator new makes (its frame 0 is inside operator new)
        while frames and ALLOCATOR_WRAPPERS.match(ht_names.get(frames[0][2]) or ""):
            frames = frames[1:]
        ht_keys = [key(m, o) for m, o, _ in frames]
        if not ht_keys:
            continue
        candidates = by_leaf.get(ht_keys[0])
        if not candidates:
            m, o = ht_keys[0]
            if isinstance(o, int) and any((m, o + d) in by_leaf for d in (-1, 1)):
                off_by_one += 1
            results.append(Site(matched=False, bytes=bytes_, count=count, ht_depth=len(ht_keys), our_depth=0,
                                leaf=describe(ht_keys[0], ht_names.get(frames[0][2]))))
            continue
        keys, ours_frames, incomplete = max(candidates, key=lambda c: preference(c[0], ht_keys))
        shared = common_prefix(keys, ht_keys)
        site = Site(matched=True, bytes=bytes_, count=count, ht_depth=len(ht_keys), our_depth=len(keys),
                    identical=keys == ht_keys, same_modules=module_runs(keys) == module_runs(ht_keys),
                    relation=RELATIONS[relation(keys, ht_keys)], incomplete=incomplete, shared=shared,
                    ht_capped=len(ht_keys) >= HEAPTRACK_MAX_FRAMES,
                    leaf=describe(ht_keys[0], ht_names.get(frames[0][2])), diverge=None)
        if site.relation in ("cut short", "differs"):
            ht_frame = describe(ht_keys[shared], ht_names.get(frames[shared][2]))
            if shared < len(keys):
                our_frame = describe(keys[shared], ours_frames[shared][3])
            else:
                our_frame = "end of stack" + (" (marked incomplete)" if incomplete else "")
            caller = describe(ht_keys[shared - 1], ht_names.get(frames[shared - 1][2])) if shared else "-"
            site.diverge = (shared, caller, ht_frame, our_frame)
        results.append(site)
    return results, off_by_one


def summarize(name, wl, results, first, second):
    matched = [s for s in results if s.matched]
    n = max(len(matched), 1)
    relations = collections.Counter(s.relation for s in matched)
    deeper = sum(s.our_depth > s.ht_depth for s in matched)
    equal = sum(s.our_depth == s.ht_depth for s in matched)
    shallower = sum(s.our_depth < s.ht_depth for s in matched)
    return ("| %s | %s | %.1f | %d | %d (%d%% of bytes) | %s | %d | %d / %d / %d | %.1f / %.1f | %d / %d | %d (%d of %d allocations) "
            "| %d of %d | %d | %s |" % (
                name, wl.kind, first["seconds"], len(results), len(matched),
                100 * sum(s.bytes for s in matched) // max(sum(s.bytes for s in results), 1),
                " / ".join(str(relations[r]) for r in RELATIONS), sum(s.same_modules for s in matched),
                deeper, equal, shallower,
                sum(s.ht_depth for s in matched) / n, sum(s.our_depth for s in matched) / n,
                first["unique"], second["unique"], first["incomplete"], first["incomplete_allocations"],
                first["outstanding_allocations"], first["not_after_call"], first["frames_checked"],
                first["lost"] + second["lost"], first["tables"]))


def divergences(name, results):
    """Matched sites whose stacks are not the same, grouped by where heaptrail's stops or turns away."""
    groups = collections.Counter()
    example = {}
    for s in results:
        if not s.matched or not s.diverge:
            continue
        shared, caller, ht_frame, our_frame = s.diverge
        g = (s.relation, re.sub(r"\+0x[0-9a-f]+", "", caller), re.sub(r"\+0x[0-9a-f]+", "", ht_frame))
        groups[g] += 1
        example.setdefault(g, (caller, ht_frame, our_frame, shared, s.ht_depth, s.our_depth))
    lines = []
    for g, count in groups.most_common(6):
        caller, ht_frame, our_frame, shared, htd, ourd = example[g]
        lines.append("| %s | %d | %s | %d of %d / %d | %s | %s | %s |" % (
            name, count, g[0], shared, htd, ourd, caller, ht_frame, our_frame))
    return lines


def write_details(path, results):
    with open(path, "w") as out:
        out.write("matched\tbytes\tcount\tht_depth\tour_depth\trelation\tsame_modules\tshared\tleaf\t"
                  "last_shared\theaptrack_next\theaptrail_next\n")
        for s in results:
            d = getattr(s, "diverge", None) or (0, "", "", "")
            out.write("%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" % (
                s.matched, s.bytes, s.count, s.ht_depth, s.our_depth, getattr(s, "relation", ""),
                getattr(s, "same_modules", ""), getattr(s, "shared", ""), s.leaf, d[1], d[2], d[3]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build")
    parser.add_argument("--mode", default="auto", help="heaptrail-record --stack-mode")
    parser.add_argument("--ringbuf-size", default="", help="heaptrail-record --ringbuf-size (default: the recorder's)")
    parser.add_argument("--only", default="", help="comma-separated program names")
    parser.add_argument("--details", default="", help="directory for per-site TSVs and the traces")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("stacks.py: run as root (heaptrail-record loads BPF programs)")
    for tool in ("heaptrack", "zstd"):
        if not shutil.which(tool):
            sys.exit("stacks.py: %s is not installed" % tool)
    tmp = args.details or tempfile.mkdtemp(prefix="heaptrail-stacks-")
    os.makedirs(tmp, exist_ok=True)
    print("load average at start: %s" % " ".join(open("/proc/loadavg").read().split()[:3]), flush=True)
    table = ["| program | kind | seconds (heaptrail run 1) | heaptrack leak sites | matched by leaf | "
             "identical / heaptrail longer / cut short / differs | same module sequence | "
             "heaptrail deeper / equal / shallower | mean physical depth heaptrack / heaptrail | "
             "unique stacks run 1 / run 2 | incomplete stacks, run 1 (outstanding allocations in them) | "
             "heaptrail frames not after a call instruction | lost events | unwind tables |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    diverge = ["| program | sites | heaptrail's stack | frames shared (of heaptrack / heaptrail) | last shared frame | "
               "heaptrack's next frame | heaptrail's next frame |",
               "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, wl in workloads(tmp).items():
        if args.only and name not in args.only.split(","):
            continue
        ht_sites, ht_names = heaptrack(wl, tmp, name)
        first = heaptrail(args.build, wl, tmp, name, args.mode, 1, args.ringbuf_size)
        second = heaptrail(args.build, wl, tmp, name, args.mode, 2, args.ringbuf_size)
        results, off_by_one = compare(ht_sites, ht_names, first["stacks"])
        if args.details:
            write_details(os.path.join(tmp, name + ".sites.tsv"), results)
        row = summarize(name, wl, results, first, second)
        table.append(row)
        diverge.extend(divergences(name, results))
        unmatched = [s for s in results if not s.matched]
        print(row, flush=True)
        print("  %s: %d unmatched sites (%d would match one byte off), e.g. %s" % (
            name, len(unmatched), off_by_one, "; ".join(s.leaf for s in unmatched[:3]) or "-"), file=sys.stderr,
            flush=True)
    print("load average at end: %s\n" % " ".join(open("/proc/loadavg").read().split()[:3]))
    print("\n".join(table))
    print()
    print("\n".join(diverge))


if __name__ == "__main__":
    main()
