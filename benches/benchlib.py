"""What the benchmark scripts share: a free port, dropping the page cache, waiting for a
mount, a source tree to untar. (Each script is run as `python3 benches/NAME.py`, which puts this directory on the
import path.)"""
import os
import socket
import subprocess
import time


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def drop_caches():
    """Write back and drop the page cache, dentries and inodes (root only; a no-op else)."""
    subprocess.run(["sync"])
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def wait_mounted(path, timeout=30, proc=None):
    """Until something is mounted exactly at `path`; exits when `proc` (the mounting
    process, if given) ends first or the timeout runs out."""
    path = os.path.abspath(path)
    end = time.time() + timeout
    while time.time() < end:
        with open("/proc/self/mountinfo") as f:
            if any(l.split(" ")[4] == path for l in f):
                return
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the mount of {path} exited with {proc.returncode}")
        time.sleep(0.1)
    raise SystemExit(f"{path} did not mount within {timeout} s")


def source_tree_tar(work):
    """A tar of about 1100 real source files (the tokio, hyper, s3s and opendal-core crates
    in ~/.cargo/registry), made in `work`; returns its path."""
    reg = os.path.expanduser("~/.cargo/registry/src")
    srcs = []
    for idx in sorted(os.listdir(reg)):
        for crate in sorted(os.listdir(os.path.join(reg, idx))):
            if crate.startswith(("tokio-1", "s3s-0", "opendal-core-", "hyper-1")):
                srcs.append(os.path.join(reg, idx, crate))
    tar = os.path.join(work, "tree.tar")
    subprocess.run(["tar", "-cf", tar] + [os.path.relpath(s, os.path.dirname(s)) for s in srcs],
                   cwd=os.path.dirname(srcs[0]), check=True, capture_output=True)
    return tar
