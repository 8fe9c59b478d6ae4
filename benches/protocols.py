#!/usr/bin/env python3
"""SFTP and WebDAV through genro-storage's daemon beside `rclone mount` of the same server.

Servers on 127.0.0.1: sshd (scripts/test-servers.sh unpacks it) and `rclone serve webdav`.
Four targets: g-sftp, rclone-sftp, g-webdav, rclone-webdav. Each round runs every target
once, in an order rotated per round (A B C D, B C D A, ...), and the table shows medians of
the rounds with the ratio genro-storage / rclone. Writes are timed until the bytes are on the
server (rclone's --vfs-cache-mode writes uploads after close, so its close returns early);
reads after the page cache is dropped. Small files at two counts show how cost grows.

    python3 benches/protocols.py [--rounds 3] [--mib 64] [--counts 100,1000]

Needs root, /dev/fuse, rclone (apt-get install rclone fuse3).
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import drop_caches, free_port, wait_mounted

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/genro-storage")
ENV = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def wait_on_server(paths_sizes, timeout=600):
    """Until every server-side path has its size (the upload landed)."""
    end = time.time() + timeout
    pending = dict(paths_sizes)
    while pending and time.time() < end:
        for p, size in list(pending.items()):
            try:
                if os.path.getsize(p) == size:
                    del pending[p]
            except OSError:
                pass
        if pending:
            time.sleep(0.01)
    if pending:
        raise RuntimeError(f"{len(pending)} uploads did not land")


def round_of(mnt, server_dir, tag, big, counts):
    """One pass of the workload on mount dir `mnt`, whose files land in `server_dir`."""
    r = {}
    work, swork = os.path.join(mnt, tag), os.path.join(server_dir, tag)
    os.makedirs(work)
    size = os.path.getsize(big)
    t = time.time()
    shutil.copyfile(big, os.path.join(work, "seq.bin"))
    wait_on_server({os.path.join(swork, "seq.bin"): size})
    r["seq_write"] = size / 2**20 / (time.time() - t)
    drop_caches()
    t = time.time()
    with open(os.path.join(work, "seq.bin"), "rb") as f:
        while f.read(1 << 20):
            pass
    r["seq_read"] = size / 2**20 / (time.time() - t)
    block = os.urandom(4096)
    for n in counts:
        d, sd = os.path.join(work, f"small{n}"), os.path.join(swork, f"small{n}")
        os.mkdir(d)
        t = time.time()
        for i in range(n):
            with open(os.path.join(d, f"f{i:05}"), "wb") as f:
                f.write(block)
        wait_on_server({os.path.join(sd, f"f{i:05}"): 4096 for i in range(n)})
        r[f"create_{n}"] = n / (time.time() - t)
        drop_caches()
        t = time.time()
        subprocess.run(["ls", "-l", d], check=True, stdout=subprocess.DEVNULL)
        r[f"ls_l_{n}"] = time.time() - t
        t = time.time()
        for i in range(n):
            with open(os.path.join(d, f"f{i:05}"), "rb") as f:
                f.read()
        r[f"read_{n}"] = n / (time.time() - t)
    t = time.time()
    shutil.rmtree(work)
    r["rm_rf"] = time.time() - t
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--counts", default="100,1000")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    run(["cargo", "build", "--release", "--bin", "genro-storage"], cwd=ROOT)
    run(["bash", os.path.join(ROOT, "scripts/test-servers.sh"), "install"])
    sshd = run(["bash", os.path.join(ROOT, "scripts/test-servers.sh"), "path", "sshd"]).stdout.strip()
    w = tempfile.mkdtemp(prefix="genro-proto-", dir="/var/tmp")
    procs, mounts = [], []
    try:
        for k in ("host", "client"):
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(w, k)])
        shutil.copyfile(os.path.join(w, "client.pub"), os.path.join(w, "authorized_keys"))
        os.makedirs("/run/sshd", exist_ok=True)
        sport = free_port()
        with open(os.path.join(w, "sshd_config"), "w") as f:
            f.write(f"ListenAddress 127.0.0.1:{sport}\nHostKey {w}/host\nAuthorizedKeysFile {w}/authorized_keys\n"
                    "PasswordAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
                    "PidFile none\nMaxStartups 100\nMaxSessions 100\nSubsystem sftp internal-sftp\n")
        procs.append(subprocess.Popen([sshd, "-D", "-e", "-f", os.path.join(w, "sshd_config")],
                                      stderr=subprocess.DEVNULL, start_new_session=True))
        wait_port(sport)
        wport = free_port()
        os.makedirs(os.path.join(w, "dav"))
        procs.append(subprocess.Popen(["rclone", "serve", "webdav", os.path.join(w, "dav"), "--addr", f"127.0.0.1:{wport}"],
                                      env=ENV, stderr=subprocess.DEVNULL, start_new_session=True))
        wait_port(wport)
        sdata = {t: os.path.join(w, "sftp", t) for t in ("g", "r")}
        ddata = {t: os.path.join(w, "dav", t) for t in ("g", "r")}
        for d in list(sdata.values()) + list(ddata.values()):
            os.makedirs(d)
        cfg = os.path.join(w, "mounts.toml")
        with open(cfg, "w") as f:
            f.write(f'[[mount]]\nname = "sftp"\nprotocol = "sftp"\nendpoint = "ssh://127.0.0.1:{sport}"\nuser = "root"\n'
                    f'key = "{w}/client"\nknown_hosts_strategy = "accept"\nroot = "{sdata["g"]}"\n\n'
                    f'[[mount]]\nname = "dav"\nprotocol = "webdav"\nendpoint = "http://127.0.0.1:{wport}"\nroot = "/g/"\n')
        os.chmod(cfg, 0o600)
        g = os.path.join(w, "g")
        os.makedirs(g)
        procs.append(subprocess.Popen([BIN, "mount", g, "--config", cfg], stderr=open(os.path.join(w, "daemon.log"), "w"),
                                      start_new_session=True))
        wait_mounted(g)
        mounts.append(g)
        env = dict(ENV, RCLONE_CONFIG_S_TYPE="sftp", RCLONE_CONFIG_S_HOST="127.0.0.1", RCLONE_CONFIG_S_PORT=str(sport),
                   RCLONE_CONFIG_S_USER="root", RCLONE_CONFIG_S_KEY_FILE=os.path.join(w, "client"),
                   RCLONE_CONFIG_W_TYPE="webdav", RCLONE_CONFIG_W_URL=f"http://127.0.0.1:{wport}/r", RCLONE_CONFIG_W_VENDOR="other")
        rmnt = {}
        for name, remote in (("rclone-sftp", f"s:{sdata['r']}"), ("rclone-webdav", "w:")):
            m = os.path.join(w, name)
            os.makedirs(m)
            procs.append(subprocess.Popen(["rclone", "mount", remote, m, "--vfs-cache-mode", "writes",
                                           "--cache-dir", os.path.join(w, name + "-cache")],
                                          env=env, stderr=subprocess.DEVNULL, start_new_session=True))
            wait_mounted(m)
            mounts.append(m)
            rmnt[name] = m
        targets = [
            ("g-sftp", os.path.join(g, "sftp"), sdata["g"]),
            ("rclone-sftp", rmnt["rclone-sftp"], sdata["r"]),
            ("g-webdav", os.path.join(g, "dav"), ddata["g"]),
            ("rclone-webdav", rmnt["rclone-webdav"], ddata["r"]),
        ]
        big = os.path.join(w, "big.bin")
        with open(big, "wb") as f:
            f.write(os.urandom(args.mib << 20))
        results = {t[0]: {} for t in targets}
        for rnd in range(args.rounds):
            order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
            for name, mnt, sdir in order:
                r = round_of(mnt, sdir, f"r{rnd}", big, counts)
                print(f"# round {rnd} {name}: {r}", file=sys.stderr, flush=True)
                for k, v in r.items():
                    results[name].setdefault(k, []).append(v)
        rows = [("seq_write", f"write {args.mib} MiB until on the server, MiB/s", True),
                ("seq_read", f"read {args.mib} MiB (caches dropped), MiB/s", True)]
        for n in counts:
            rows += [(f"create_{n}", f"create {n} × 4 KiB until on the server, files/s", True),
                     (f"ls_l_{n}", f"`ls -l` of {n} files (caches dropped), s", False),
                     (f"read_{n}", f"read {n} × 4 KiB, files/s", True)]
        rows.append(("rm_rf", "`rm -rf` of the round's tree, s", False))
        cols = [t[0] for t in targets]
        print(f"Workload (median of {args.rounds} rounds) | " + " | ".join(cols) + " | g/rclone sftp | g/rclone webdav")
        print("|".join(["---"] * (len(cols) + 3)))
        for key, label, higher in rows:
            med = {c: statistics.median(results[c][key]) for c in cols}
            def ratio(a, b):
                return med[a] / med[b] if higher else med[b] / med[a]
            print(label + " | " + " | ".join(f"{med[c]:,.2f}" if med[c] < 100 else f"{med[c]:,.0f}" for c in cols)
                  + f" | {ratio('g-sftp', 'rclone-sftp'):.2f}× | {ratio('g-webdav', 'rclone-webdav'):.2f}×")
    finally:
        for m in mounts:
            subprocess.run(["umount", "-l", m], capture_output=True)
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except OSError:
                pass
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
