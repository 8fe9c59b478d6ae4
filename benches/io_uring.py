"""FUSE over io_uring against /dev/fuse, on the same binary, beside native ext4.

Usage: python3 benches/io_uring.py [ROUNDS] [BINARY]   (default 5, target/release/genro-storage)

Two daemons of BINARY, one with --io-uring and one without, each with a local and a memory
mount; rounds rotate among native, and the four mounts. Per target, medians of:
- create, read and unlink of 2000 x 4 KiB files (caches dropped before create and read);
- stat round trips: os.stat of one file 20000 times on daemons started with --attr-ttl 0
  --negative-ttl 0 (every stat reaches the daemon: a LOOKUP and a GETATTR).
Sets /sys/module/fuse/parameters/enable_uring to Y (root) and puts it back after.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import drop_caches, wait_mounted  # noqa: E402

PARAM = "/sys/module/fuse/parameters/enable_uring"
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
binary = sys.argv[2] if len(sys.argv) > 2 else "target/release/genro-storage"
N = 2000
STATS = 20000

old = open(PARAM).read().strip()
open(PARAM, "w").write("Y")
work = tempfile.mkdtemp(prefix="io-uring-", dir="/var/tmp")
native = os.path.join(work, "native")
os.makedirs(native)
targets = {"native": native}
stat_targets = {}
procs = []


def start(tag, flags):
    d = os.path.join(work, tag)
    os.makedirs(os.path.join(d, "data"))
    mnt = os.path.join(d, "mnt")
    os.makedirs(mnt)
    cfg = os.path.join(d, "mounts.toml")
    with open(cfg, "w") as f:
        f.write(f'[[mount]]\nname = "local"\nprotocol = "local"\nroot_path = "{d}/data"\n\n'
                '[[mount]]\nname = "mem"\nprotocol = "memory"\n')
    p = subprocess.Popen([binary, "mount", mnt, "--config", cfg] + flags,
                         stderr=open(os.path.join(d, "log"), "w"))
    procs.append((p, mnt))
    wait_mounted(mnt, proc=p)
    return mnt


try:
    for name, flags in [("dev_fuse", []), ("io_uring", ["--io-uring"])]:
        mnt = start(name, flags)
        targets[f"local {name}"] = os.path.join(mnt, "local")
        targets[f"memory {name}"] = os.path.join(mnt, "mem")
        mnt = start(name + "-ttl0", flags + ["--attr-ttl", "0", "--negative-ttl", "0"])
        stat_targets[f"local {name}"] = os.path.join(mnt, "local")
        stat_targets[f"memory {name}"] = os.path.join(mnt, "mem")
    stat_targets["native"] = native

    def small(d):
        s = os.path.join(d, "small")
        os.makedirs(s, exist_ok=True)
        buf = b"x" * 4096
        drop_caches()
        t = time.perf_counter()
        for i in range(N):
            with open(os.path.join(s, f"f{i}"), "wb") as f:
                f.write(buf)
        create = N / (time.perf_counter() - t)
        drop_caches()
        t = time.perf_counter()
        for i in range(N):
            with open(os.path.join(s, f"f{i}"), "rb") as f:
                f.read()
        read = N / (time.perf_counter() - t)
        t = time.perf_counter()
        for i in range(N):
            os.unlink(os.path.join(s, f"f{i}"))
        unlink = N / (time.perf_counter() - t)
        os.rmdir(s)
        return {"create": create, "read": read, "unlink": unlink}

    def stat_rt(d):
        p = os.path.join(d, "x")
        open(p, "w").close()
        t = time.perf_counter()
        for _ in range(STATS):
            os.stat(p)
        return {"stat_us": (time.perf_counter() - t) / STATS * 1e6}

    res = {k: {} for k in targets}
    names = list(targets)
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            for m, v in {**small(targets[k]), **stat_rt(stat_targets[k])}.items():
                res[k].setdefault(m, []).append(v)
        print(f"round {r + 1} of {rounds} done", file=sys.stderr, flush=True)
finally:
    for p, mnt in procs:
        subprocess.run(["umount", mnt])
        p.wait()
    shutil.rmtree(work, ignore_errors=True)
    open(PARAM, "w").write(old)

med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in res.items()}
print("| target | create files/s | read files/s | unlink files/s | create+unlink vs native | read vs native | stat round trip, µs |")
print("|---|---|---|---|---|---|---|")
n = med["native"]
for k in names:
    m = med[k]
    cu = (1 / n["create"] + 1 / n["unlink"]) / (1 / m["create"] + 1 / m["unlink"])
    print(f"| {k} | {m['create']:,.0f} | {m['read']:,.0f} | {m['unlink']:,.0f} | {cu:.2f}× | "
          f"{m['read'] / n['read']:.2f}× | {m['stat_us']:.1f} |")
for kind in ["local", "memory"]:
    a, b = med[f"{kind} io_uring"], med[f"{kind} dev_fuse"]
    print(f"{kind}: io_uring / dev_fuse: create {a['create'] / b['create']:.2f}×, read {a['read'] / b['read']:.2f}×, "
          f"unlink {a['unlink'] / b['unlink']:.2f}×, stat round trip {b['stat_us'] / a['stat_us']:.2f}× as fast")
print("raw:", res)
