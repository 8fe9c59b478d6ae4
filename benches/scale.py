#!/usr/bin/env python3
"""How costs grow with a mount's size: create, stat, `ls -l`, unlink and `rm -rf` of N files
in one directory, on an empty mount and with OTHER files elsewhere in it.

Usage: python3 benches/scale.py DIR [--sizes 1000,10000] [--other 30000] [--spread 50x1000]
                                 [--pid DAEMON_PID]
DIR is a directory on the mount under test (a mount of a running daemon, or a native
directory to compare with). With --pid, the daemon's resident memory is printed after each
step. Prints one line per phase: files/s, and the ratio to the same
phase on the empty mount. Alternate targets (A B A B) when comparing: this machine is noisy.
"""
import argparse
import os
import shutil
import subprocess
import time


def rate(n, f):
    t = time.perf_counter()
    f()
    return n / (time.perf_counter() - t)


def fill(d, n):
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        with open(os.path.join(d, f"f{i}"), "wb"):
            pass


PID = None


def rss(when):
    """Print the daemon's resident set size (VmRSS) and its peak (VmHWM)."""
    if PID is None:
        return
    with open(f"/proc/{PID}/status") as f:
        kv = dict(line.split(":", 1) for line in f if ":" in line)
    print(f"rss {when}: {int(kv['VmRSS'].split()[0]) // 1024} MiB (peak {int(kv['VmHWM'].split()[0]) // 1024} MiB)", flush=True)


def phases(base, n):
    d = os.path.join(base, f"dir{n}")
    out = {}
    out["create"] = rate(n, lambda: fill(d, n))
    out["stat"] = rate(n, lambda: [os.lstat(os.path.join(d, f"f{i}")) for i in range(n)])
    out["ls -l"] = rate(n, lambda: subprocess.run(["ls", "-l", d], stdout=subprocess.DEVNULL, check=True))
    half = n // 2
    out["unlink"] = rate(half, lambda: [os.unlink(os.path.join(d, f"f{i}")) for i in range(half)])
    out["rm -rf"] = rate(n - half, lambda: subprocess.run(["rm", "-rf", d], check=True))
    print(f"{n} files: " + ", ".join(f"{k} {v:.0f}/s" for k, v in out.items()), flush=True)
    rss(f"after {n} files")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--other", type=int, default=30000)
    ap.add_argument("--spread", default="50x1000", help="DIRSxFILES removed with one rm -rf")
    ap.add_argument("--pid", type=int, help="the daemon's pid, to report its memory")
    a = ap.parse_args()
    global PID
    PID = a.pid
    rss("at start")
    sizes = [int(s) for s in a.sizes.split(",")]
    base = os.path.join(a.dir, "scale")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    empty = {n: phases(base, n) for n in sizes}
    other = os.path.join(base, "other")
    t = time.perf_counter()
    for k in range(max(1, a.other // 1000)):
        fill(os.path.join(other, f"o{k}"), min(1000, a.other))
    print(f"filled {a.other} other files in {time.perf_counter() - t:.1f} s", flush=True)
    rss(f"with {a.other} others")
    full = {n: phases(base, n) for n in sizes}
    for n in sizes:
        for ph, r in empty[n].items():
            f = full[n][ph]
            print(f"{n:>7} files  {ph:7}  empty mount {r:9.0f}/s   with {a.other} others {f:9.0f}/s   ratio {f / r:.2f}")
    first = sizes[0]
    for n in sizes[1:]:
        print(f"rm -rf of {n} vs {first} files (empty mount): ratio {empty[n]['rm -rf'] / empty[first]['rm -rf']:.2f}")
    dirs, files = (int(x) for x in a.spread.split("x"))
    spread = os.path.join(base, "spread")
    c = rate(dirs * files, lambda: [fill(os.path.join(spread, f"d{k}"), files) for k in range(dirs)])
    r = rate(dirs * files, lambda: subprocess.run(["rm", "-rf", spread], check=True))
    print(f"{dirs}x{files} files: created {c:.0f}/s, removed {r:.0f}/s, ratio {r / c:.2f}")
    shutil.rmtree(base, ignore_errors=True)
    rss("at the end")


if __name__ == "__main__":
    main()
