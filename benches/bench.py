#!/usr/bin/env python3
"""Side-by-side benchmark of genro-storage's FUSE daemon.

One run measures the same workload on: a native directory; genro-storage's local and memory
mounts; `rclone mount` of a local directory (--vfs-cache-mode writes); and, on one loopback S3
server (s3s-fs, examples/s3_server.rs), genro-storage's s3 mount (with the default 1 s cache,
and with cache_ttl = 300 like rclone's default 5-minute directory cache: small-file and tree
phases), `rclone mount`, `s3fs` and the raw opendal client (examples/s3_raw.rs, the S3
ceiling). It prints a Markdown table.

    python3 benches/bench.py [--size-mib 1024] [--rss] [--only native,g-local,...]

Needs root, /dev/fuse, fio, rclone, s3fs (apt-get install fio rclone s3fs fuse3).
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import drop_caches, source_tree_tar, wait_mounted

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/genro-storage")
S3_SERVER = os.path.join(ROOT, "target/release/examples/s3_server")
S3_RAW = os.path.join(ROOT, "target/release/examples/s3_raw")
ENV_NO_CA = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def umount(path):
    subprocess.run(["umount", path], capture_output=True)
    subprocess.run(["umount", "-l", path], capture_output=True)


def fio(path, *args):
    out = run(["fio", "--name=b", f"--filename={path}", "--output-format=json", "--ioengine=psync", *args])
    return json.loads(out.stdout)["jobs"][0]


def timed(cmd, cwd):
    t = time.time()
    subprocess.run(cmd, shell=True, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.time() - t


def median3(f):
    vals = sorted(f() for _ in range(3))
    return vals[1]


def shared_reads(dirs, size_mib, results):
    """One host file, hard-linked into native's directory and each local mount's root: the
    same blocks on disk for every local target (each target's own seq.bin lies differently on
    this disk, and native reads of those vary 2x by layout alone). The targets take turns,
    three rounds, caches dropped before each read (the virtual disk's host caches blocks too,
    so a fixed order would favour whoever reads second); the median of each is kept."""
    seq = {n: [] for n in dirs}
    rnd = {n: [] for n in dirs}
    for _ in range(3):
        for n, d in dirs.items():
            drop_caches()
            seq[n].append(fio(os.path.join(d, "shared.bin"), "--rw=read", "--bs=1M", f"--size={size_mib}M")["read"]["bw_bytes"] / 2**20)
        for n, d in dirs.items():
            drop_caches()
            rnd[n].append(fio(os.path.join(d, "shared.bin"), "--rw=randread", "--bs=4k", f"--size={size_mib}M", "--runtime=5", "--time_based")["read"]["iops"])
    for n in dirs:
        results.setdefault(n, {})["seq_read_shared"] = sorted(seq[n])[1]
        results[n]["rand_read_4k_shared"] = sorted(rnd[n])[1]
        print(f"# shared {n}: seq {[round(x) for x in seq[n]]} rand {[round(x) for x in rnd[n]]}", file=sys.stderr, flush=True)
    drop_caches()


def workload(d, size_mib, tree_tar, seq_only=False, files_only=False):
    """The workload on directory d; returns {name: value}. A step that fails is reported as
    missing, and the others still run. seq_only: the large-file phases alone; files_only:
    the small-file and tree phases alone."""
    r = {}
    f = os.path.join(d, "seq.bin")

    def step(name, fn):
        try:
            r[name] = fn()
        except Exception as e:  # a peer that cannot do a step: reported, not fatal
            print(f"#   {name} failed: {e}", file=sys.stderr)

    def seq_write():
        j = fio(f, "--rw=write", "--bs=1M", f"--size={size_mib}M", "--end_fsync=1")
        drop_caches()
        return j["write"]["bw_bytes"] / 2**20

    def seq_read():
        j = fio(f, "--rw=read", "--bs=1M", f"--size={size_mib}M")
        drop_caches()
        return j["read"]["bw_bytes"] / 2**20

    def par4():
        part = size_mib // 4
        j = fio(f, "--rw=read", "--bs=1M", f"--size={part}M", "--numjobs=4", f"--offset_increment={part}M", "--group_reporting")
        drop_caches()
        return j["read"]["bw_bytes"] / 2**20

    # median of three: this machine's disk and page cache make single runs noisy
    if files_only:
        return small_and_tree(d, tree_tar, r, step)
    step("seq_write", lambda: median3(seq_write))
    step("seq_read", lambda: median3(seq_read))
    step("rand_read_4k", lambda: fio(f, "--rw=randread", "--bs=4k", f"--size={size_mib}M", "--runtime=5", "--time_based")["read"]["iops"])

    def rand_warm():
        # the file read once through the mount just before, and fio told not to drop it
        subprocess.run(["cat", f], stdout=subprocess.DEVNULL, check=True)
        return fio(f, "--rw=randread", "--bs=4k", f"--size={size_mib}M", "--runtime=5", "--time_based", "--invalidate=0")["read"]["iops"]

    step("rand_read_4k_warm", rand_warm)
    drop_caches()
    step("par4_read", lambda: median3(par4))
    if os.path.exists(f):
        os.unlink(f)
    if seq_only:
        return r
    return small_and_tree(d, tree_tar, r, step)


def small_and_tree(d, tree_tar, r, step):
    """2000 small files, then the source tree: into r through step."""
    small = os.path.join(d, "small")
    block = os.urandom(4096)

    def create():
        os.mkdir(small)
        t = time.time()
        for i in range(2000):
            with open(os.path.join(small, f"f{i:04}"), "wb") as fh:
                fh.write(block)
        return 2000 / (time.time() - t)

    def read():
        t = time.time()
        for i in range(2000):
            with open(os.path.join(small, f"f{i:04}"), "rb") as fh:
                fh.read()
        return 2000 / (time.time() - t)

    def unlink():
        t = time.time()
        for i in range(2000):
            os.unlink(os.path.join(small, f"f{i:04}"))
        n = 2000 / (time.time() - t)
        os.rmdir(small)
        return n

    # Before every phase that creates files: a no-journal ext4 (this machine's disk) scans
    # recently deleted inodes that are still in the buffer cache on every inode allocation,
    # so a target measured right after another's deletions would pay for them.
    drop_caches()
    step("small_create", create)
    drop_caches()
    step("ls_l_2000", lambda: timed(f"ls -l {small}", d))
    step("small_read", read)
    step("small_unlink", unlink)
    tree = os.path.join(d, "tree")
    drop_caches()
    step("tar_x", lambda: (os.makedirs(tree, exist_ok=True), timed(f"tar -xf {tree_tar} -C tree", d))[1])
    drop_caches()
    step("find", lambda: timed("find tree > /dev/null", d))
    step("grep_r", lambda: timed("grep -r -c zzzqqq tree || true", d))
    step("rm_rf", lambda: timed("rm -rf tree", d))
    return r


ROWS = [
    ("seq_write", "sequential write, durable at close (fsync), MiB/s", True),
    ("seq_read", "sequential read, MiB/s (caches dropped)", True),
    ("seq_read_shared", "sequential read of one host file shared by the local targets (hard links, taking turns), MiB/s (caches dropped)", True),
    ("rand_read_4k", "random 4 KiB reads, IOPS (caches dropped)", True),
    ("rand_read_4k_shared", "random 4 KiB reads of that shared host file, IOPS (caches dropped, same turns)", True),
    ("rand_read_4k_warm", "random 4 KiB reads, IOPS (file read just before, fio --invalidate=0)", True),
    ("par4_read", "4 parallel readers, MiB/s", True),
    ("small_create", "create 2000 × 4 KiB, files/s", True),
    ("ls_l_2000", "`ls -l` of 2000 files, s", False),
    ("small_read", "read 2000 × 4 KiB, files/s", True),
    ("small_unlink", "unlink 2000 files, files/s", True),
    ("tar_x", "`tar -x` of the source tree, s", False),
    ("find", "`find` of the tree, s", False),
    ("grep_r", "`grep -r` of the tree, s", False),
    ("rm_rf", "`rm -rf` of the tree, s", False),
    ("rss_4g_mib", "daemon peak RSS, 4 GiB in and out, MiB", False),
]


def fmt(v):
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rss", action="store_true", help="also copy 4 GiB in and out of each genro-storage mount and report peak RSS")
    ap.add_argument("--only", default="", help="comma-separated targets")
    args = ap.parse_args()
    run(["cargo", "build", "--release", "--bin", "genro-storage", "--example", "s3_server", "--example", "s3_raw"], cwd=ROOT)
    w = tempfile.mkdtemp(prefix="genro-bench-", dir="/var/tmp")
    procs = []
    mounts = []
    try:
        # a real source tree of about 1000 files
        tree_tar = source_tree_tar(w)
        nfiles = len(run(["tar", "-tf", tree_tar]).stdout.splitlines())

        # loopback S3
        s3root = os.path.join(w, "s3root")
        for b in ("genro", "genroc", "rclone", "s3fs", "raw"):
            os.makedirs(os.path.join(s3root, b))
        port = 19000 + os.getpid() % 1000
        endpoint = f"http://127.0.0.1:{port}"
        procs.append(subprocess.Popen([S3_SERVER, s3root, str(port)], stderr=subprocess.DEVNULL))
        time.sleep(1)

        os.makedirs(os.path.join(w, "native"))
        os.makedirs(os.path.join(w, "local-root"))
        os.makedirs(os.path.join(w, "rclone-src"))
        shared = os.path.join(w, "native", "shared.bin")
        run(["fio", "--name=s", f"--filename={shared}", "--rw=write", "--bs=1M", f"--size={args.size_mib}M", "--end_fsync=1"])
        for root in ("local-root", "rclone-src"):
            os.link(shared, os.path.join(w, root, "shared.bin"))
        cfg = os.path.join(w, "mounts.toml")
        with open(cfg, "w") as f:
            f.write(f'[[mount]]\nname = "local"\nprotocol = "local"\nroot_path = "{w}/local-root"\n\n'
                    '[[mount]]\nname = "mem"\nprotocol = "memory"\n\n'
                    f'[[mount]]\nname = "s3"\nprotocol = "s3"\nbucket = "genro"\nendpoint_url = "{endpoint}"\n'
                    'access_key = "bench"\nsecret_key = "bench-secret"\n\n'
                    # rclone's default --dir-cache-time is 5 minutes: the same trust, like for like
                    f'[[mount]]\nname = "s3c"\nprotocol = "s3"\nbucket = "genroc"\nendpoint_url = "{endpoint}"\n'
                    'access_key = "bench"\nsecret_key = "bench-secret"\ncache_ttl = 300\n')
        os.chmod(cfg, 0o600)  # it holds a secret: the daemon refuses it open to others
        g = os.path.join(w, "g")
        os.makedirs(g)
        daemon = subprocess.Popen([BIN, "mount", g, "--config", cfg], stderr=open(os.path.join(w, "daemon.log"), "w"))
        procs.append(daemon)
        wait_mounted(g)
        mounts.append(g)

        rl = os.path.join(w, "rclone-local")
        os.makedirs(rl)
        procs.append(subprocess.Popen(["rclone", "mount", os.path.join(w, "rclone-src"), rl, "--vfs-cache-mode", "writes",
                                       "--cache-dir", os.path.join(w, "rclone-cache")], env=ENV_NO_CA, stderr=subprocess.DEVNULL))
        wait_mounted(rl)
        mounts.append(rl)

        rs = os.path.join(w, "rclone-s3")
        os.makedirs(rs)
        env = dict(ENV_NO_CA, RCLONE_CONFIG_B_TYPE="s3", RCLONE_CONFIG_B_PROVIDER="Other", RCLONE_CONFIG_B_ENDPOINT=endpoint,
                   RCLONE_CONFIG_B_ACCESS_KEY_ID="bench", RCLONE_CONFIG_B_SECRET_ACCESS_KEY="bench-secret",
                   RCLONE_CONFIG_B_FORCE_PATH_STYLE="true")
        procs.append(subprocess.Popen(["rclone", "mount", "b:rclone", rs, "--vfs-cache-mode", "writes",
                                       "--cache-dir", os.path.join(w, "rclone-cache-s3")], env=env, stderr=subprocess.DEVNULL))
        wait_mounted(rs)
        mounts.append(rs)

        sf = os.path.join(w, "s3fs")
        os.makedirs(sf)
        pw = os.path.join(w, "s3fs.passwd")
        with open(pw, "w") as f:
            f.write("bench:bench-secret\n")
        os.chmod(pw, 0o600)
        run(["s3fs", "s3fs", sf, "-o", f"url={endpoint}", "-o", "use_path_request_style", "-o", f"passwd_file={pw}"], env=ENV_NO_CA)
        wait_mounted(sf)
        mounts.append(sf)

        targets = [
            ("native", os.path.join(w, "native")),
            ("g-local", os.path.join(g, "local")),
            ("g-mem", os.path.join(g, "mem")),
            ("rclone-local", rl),
            ("g-s3", os.path.join(g, "s3")),
            ("g-s3-ttl300", os.path.join(g, "s3c")),
            ("rclone-s3", rs),
            ("s3fs", sf),
        ]
        only = [t for t in args.only.split(",") if t]
        results = {}
        local_family = {n: d for n, d in targets if n in ("native", "g-local", "rclone-local") and (not only or n in only)}
        if local_family:
            shared_reads(local_family, args.size_mib, results)
        for name, d in targets:
            if only and name not in only:
                continue
            print(f"# {name}", file=sys.stderr, flush=True)
            # s3fs cannot mkdir on s3s-fs (no directory markers) and then hangs in `ls`:
            # only its file phases run
            results.setdefault(name, {}).update(workload(d, args.size_mib, tree_tar, seq_only=(name == "s3fs"),
                                                         files_only=(name == "g-s3-ttl300")))
            print(f"# {name}: {results[name]}", file=sys.stderr, flush=True)
        if not only or "raw" in only:
            out = run([S3_RAW, endpoint, "raw"]).stdout
            raw = {}
            for line in out.splitlines():
                k, v, _ = line.split()
                raw[k] = float(v)
            results["raw-s3"] = {"seq_write": raw["seq_write"], "seq_read": raw["seq_read"],
                                 "small_create": raw["small_create"], "small_read": raw["small_read"],
                                 "ls_l_2000": raw["list_2000"]}
        if args.rss:
            # peak RSS of a fresh daemon serving one mount while a 4 GiB file goes in and out
            big = os.path.join(w, "big4g")
            run(["dd", "if=/dev/urandom", f"of={big}", "bs=1M", "count=4096", "status=none"])
            mount_tables = {
                "g-local": f'[[mount]]\nname = "x"\nprotocol = "local"\nroot_path = "{w}/rss-root"\ncreate = true\n',
                "g-mem": '[[mount]]\nname = "x"\nprotocol = "memory"\n',
                "g-s3": f'[[mount]]\nname = "x"\nprotocol = "s3"\nbucket = "genro"\nprefix = "rss"\nendpoint_url = "{endpoint}"\n'
                        'access_key = "bench"\nsecret_key = "bench-secret"\n',
            }
            for name, table in mount_tables.items():
                rcfg = os.path.join(w, f"rss-{name}.toml")
                with open(rcfg, "w") as f:
                    f.write(table)
                os.chmod(rcfg, 0o600)
                rm = os.path.join(w, f"rss-{name}")
                os.makedirs(rm)
                d = subprocess.Popen([BIN, "mount", rm, "--config", rcfg], stderr=subprocess.DEVNULL)
                wait_mounted(rm)
                try:
                    run(["cp", big, os.path.join(rm, "x", "big4g")])
                    drop_caches()
                    run(["cp", os.path.join(rm, "x", "big4g"), "/dev/null"])
                    results.setdefault(name, {})["rss_4g_mib"] = rss_hwm(d.pid)
                    os.unlink(os.path.join(rm, "x", "big4g"))
                finally:
                    umount(rm)
                    d.send_signal(signal.SIGTERM)
                    d.wait(timeout=60)
                print(f"# rss {name}: {results[name]['rss_4g_mib']} MiB", file=sys.stderr, flush=True)

        cols = [c for c in ("native", "g-local", "g-mem", "rclone-local", "g-s3", "g-s3-ttl300", "rclone-s3", "s3fs", "raw-s3")
                if c in results]
        print(f"Workload (tree: {nfiles} files; size {args.size_mib} MiB) | " + " | ".join(cols))
        print("|".join(["---"] * (len(cols) + 1)))
        for key, label, _ in ROWS:
            if not any(key in results[c] for c in cols):
                continue
            print(label + " | " + " | ".join(fmt(results[c].get(key)) for c in cols))
        print()
        print("Ratios | value")
        print("---|---")
        def ratio(a, b, key, higher):
            va, vb = results.get(a, {}).get(key), results.get(b, {}).get(key)
            if not va or not vb:
                return None
            return va / vb if higher else vb / va
        for key, label, higher in ROWS:
            for a, b in (("g-local", "native"), ("g-local", "rclone-local"), ("g-mem", "g-local"),
                         ("g-s3", "raw-s3"), ("g-s3", "rclone-s3"), ("g-s3", "s3fs"),
                         ("g-s3-ttl300", "raw-s3"), ("g-s3-ttl300", "rclone-s3")):
                v = ratio(a, b, key, higher)
                if v is not None:
                    print(f"{key}: {a} / {b} | {v:.2f}×")
    finally:
        for m in mounts:
            umount(m)
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(w, ignore_errors=True)


def rss_hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return None


if __name__ == "__main__":
    main()
