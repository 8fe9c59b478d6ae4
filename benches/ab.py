"""Two builds of the daemon side by side: is a change free?

Usage: python3 benches/ab.py OLD_BINARY NEW_BINARY [ROUNDS]   (default 6 rounds)

Each binary serves a local and a memory mount (on /dev/fuse). Rounds alternate the order of
the two binaries (A B, then B A, ...). Per mount and binary, medians of create (open, write
4 KiB, close), read, rename and unlink of 2000 files, in files per second, and the ratio
NEW / OLD (> 1: the new build is faster). Caches are dropped before create and read.
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

old_bin, new_bin = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 6
N = 2000
work = tempfile.mkdtemp(prefix="ab-", dir="/var/tmp")
procs = []


def start(tag, binary):
    d = os.path.join(work, tag)
    os.makedirs(os.path.join(d, "data"))
    mnt = os.path.join(d, "mnt")
    os.makedirs(mnt)
    cfg = os.path.join(d, "mounts.toml")
    with open(cfg, "w") as f:
        f.write(f'[[mount]]\nname = "local"\nprotocol = "local"\nroot_path = "{d}/data"\n\n'
                '[[mount]]\nname = "mem"\nprotocol = "memory"\n')
    log = open(os.path.join(d, "daemon.log"), "w")
    p = subprocess.Popen([binary, "mount", mnt, "--config", cfg], stderr=log, start_new_session=True)
    procs.append(p)
    wait_mounted(mnt, proc=p)
    return mnt


def one(root):
    d = os.path.join(root, "ab")
    os.makedirs(d, exist_ok=True)
    names = [os.path.join(d, f"f{i}") for i in range(N)]
    body = b"x" * 4096
    out = {}
    drop_caches()
    t = time.perf_counter()
    for p in names:
        with open(p, "wb") as f:
            f.write(body)
    out["create"] = N / (time.perf_counter() - t)
    drop_caches()
    t = time.perf_counter()
    for p in names:
        with open(p, "rb") as f:
            f.read()
    out["read"] = N / (time.perf_counter() - t)
    t = time.perf_counter()
    for p in names:
        os.rename(p, p + "r")
    out["rename"] = N / (time.perf_counter() - t)
    t = time.perf_counter()
    for p in names:
        os.unlink(p + "r")
    out["unlink"] = N / (time.perf_counter() - t)
    os.rmdir(d)
    return out


try:
    mnts = {"old": start("old", old_bin), "new": start("new", new_bin)}
    res = {}
    for r in range(rounds):
        order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
        for which in order:
            for mount in ["local", "mem"]:
                for k, v in one(os.path.join(mnts[which], mount)).items():
                    res.setdefault((mount, k, which), []).append(v)
    print(f"{N} files x 4 KiB, {rounds} rounds, medians in files/s (new / old)")
    for mount in ["local", "mem"]:
        for k in ["create", "read", "rename", "unlink"]:
            o = statistics.median(res[(mount, k, "old")])
            n = statistics.median(res[(mount, k, "new")])
            print(f"{mount:6} {k:7} old {o:9,.0f}  new {n:9,.0f}  {n / o:5.2f}x")
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    for tag in ["old", "new"]:
        subprocess.run(["umount", "-l", os.path.join(work, tag, "mnt")], stderr=subprocess.DEVNULL)
    shutil.rmtree(work, ignore_errors=True)
