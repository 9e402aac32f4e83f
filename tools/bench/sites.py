"""Figure 7 of the harness: what one uprobe hit costs, per x86-64 instruction class and
per candidate probe site of the real allocator functions (glibc, libstdc++), measured
by bench-site-cost (tools/bench/sites/) in one process, as ratios within one run.

Also usable alone:  sudo python3 tools/bench/sites.py --tool BENCH_SITE_COST
"""
import argparse
import re
import subprocess
import sys

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
LIBSTDCXX = "/lib/x86_64-linux-gnu/libstdc++.so.6"

# Instruction classes of insn_zoo.S, in the order shown.
ZOO = [
    ("push_rbp", "push %rbp"), ("push_r12", "push %r12"), ("nop", "nop"), ("xchg_ax_ax", "xchg %ax,%ax (66 90)"),
    ("nopl4", "nopl 0x0(%rax)"), ("nopl5", "nopl 0x0(%rax,%rax,1) (5-byte nop)"), ("endbr64", "endbr64"),
    ("jmp8", "jmp rel8"), ("jmp32", "jmp rel32"), ("jcc8", "je rel8"), ("jcc32", "je rel32"),
    ("call32", "call rel32"), ("ret", "ret"), ("mov_reg", "mov %rdi,%rax"), ("mov_imm", "mov $1,%eax"),
    ("test_reg", "test %rdi,%rdi"), ("xor_reg", "xor %eax,%eax"), ("lea", "lea 8(%rdi),%rax"),
    ("sub_rsp", "sub $8,%rsp"), ("cmp_riprel", "cmpb $0,x(%rip)"), ("mov_store", "mov %rdi,-8(%rsp)"),
]
# Return probes: on an emulated entry, a single-stepped one, and the optimizable nop.
ZOO_RETURN = ["push_rbp", "test_reg", "nopl5"]

LIBC_FUNCTIONS = ["malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign", "memalign",
                  "aligned_alloc", "valloc", "pvalloc", "mmap", "munmap"]
CXX_FUNCTIONS = [p + s for p in ("_Znw", "_Zna") for s in ("m", "mRKSt9nothrow_t", "mSt11align_val_t",
                                                         "mSt11align_val_tRKSt9nothrow_t")] + \
                [p + s for p in ("_Zdl", "_Zda") for s in ("Pv", "Pvm", "PvRKSt9nothrow_t", "PvSt11align_val_t",
                                                         "PvmSt11align_val_t", "PvSt11align_val_tRKSt9nothrow_t")]
MAX_INSNS = 6  # instructions listed per function: the prologue, up to the first transfer


def dynsym(path):
    out = subprocess.run(["nm", "-D", "--defined-only", path], stdout=subprocess.PIPE, check=True).stdout.decode()
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            table.setdefault(parts[2].split("@")[0], int(parts[0], 16))
    return table


def prologue(path, address):
    """The first instructions at `address`: [(offset, bytes, text)], up to and including
    the first jump, call or ret (or MAX_INSNS)."""
    out = subprocess.run(["objdump", "-d", "--start-address", hex(address), "--stop-address", hex(address + 48), path],
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    insns = []
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t(.*)$", line)
        if not m:
            continue
        off = int(m.group(1), 16) - address
        text = re.sub(r"\s+#.*$", "", m.group(3)).strip()
        text = re.sub(r"\s+", " ", text)
        insns.append((off, m.group(2).strip(), text))
        if len(insns) >= MAX_INSNS or re.match(r"(jmp|j[a-z]+|call|ret)\b", text):
            break
    return insns


def site_list():
    """(label, probe, symbol, offset, instruction text) for the zoo and the real functions."""
    sites = [(f"zoo:{name}", "uprobe", f"zoo_{name}", 0, text) for name, text in ZOO]
    sites += [(f"zoo:{name}:ret", "uretprobe", f"zoo_{name}", 0, dict(ZOO)[name]) for name in ZOO_RETURN]
    seen = set()
    for path, names in ((LIBC, LIBC_FUNCTIONS), (LIBSTDCXX, CXX_FUNCTIONS)):
        table = dynsym(path)
        for name in names:
            if name not in table or (path, table[name]) in seen:
                continue
            seen.add((path, table[name]))
            insns = prologue(path, table[name])
            for off, raw, text in insns:
                sites.append((f"{name}+{off}", "uprobe", name, off, text))
            if name.startswith("_Zd") or name in ("free", "munmap"):
                continue
            # Return probes: wherever the return address is still at [sp] (the kernel
            # hijacks it there), i.e. before the first push, stack adjustment or call.
            for off, raw, text in insns:
                sites.append((f"{name}+{off}:ret", "uretprobe", name, off, text))
                if re.match(r"(push|call)\b", text) or re.match(r"sub .*,%rsp$", text):
                    break  # the stack pointer moves after this one
    return sites


def measure(tool, rounds=5, iterations=10000):
    sites = site_list()
    text = "".join(f"{label} {probe} {symbol} {off}\n" for label, probe, symbol, off, _ in sites)
    p = subprocess.run([tool, "--rounds", str(rounds), "--iterations", str(iterations)], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError(f"bench-site-cost failed: {p.stderr.decode()[-2000:]}")
    by_label = {}
    for line in p.stdout.decode().splitlines():
        f = line.split()
        if len(f) == 7:
            by_label[f[0]] = (int(f[5]), int(f[4]), int(f[6]))  # min, median, max
        elif len(f) == 5 and f[4] == "refused":
            by_label[f[0]] = "refused"
    rows = []
    for label, probe, symbol, off, insn in sites:
        rows.append({"label": label, "probe": probe, "symbol": symbol, "offset": off, "insn": insn,
                     "ns": by_label.get(label)})
    return {"rows": rows, "rounds": rounds, "iterations": iterations}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tool", required=True, help="path of bench-site-cost")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=10000)
    ap.add_argument("--list", action="store_true", help="only print the sites")
    args = ap.parse_args()
    if args.list:
        for s in site_list():
            print(*s)
        return
    res = measure(args.tool, args.rounds, args.iterations)
    for r in res["rows"]:
        ns = r["ns"]
        cost = "refused" if ns == "refused" else f"{ns[1] / 1000:7.2f} us" if ns else "n/a"
        print(f"{r['label']:45s} {r['probe']:9s} {r['insn']:40s} {cost}")


if __name__ == "__main__":
    sys.exit(main())
