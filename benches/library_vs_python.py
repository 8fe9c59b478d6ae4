#!/usr/bin/env python3
"""genro-storage (Rust) beside genro-storage 0.8.4 (Python, fsspec/s3fs) on one moto server,
in alternating rounds (Python, Rust, Python, Rust, ...): the seed's parallel pattern (N small
writes at once, then N reads at once) and a tree copy local -> S3 (500 x 4 KiB + 4 x 32 MiB).
Reports medians, the ratio (Python time / Rust time: > 1 means Rust is faster) and the
requests each side sent, counted in moto's request log.

  python3 -m venv /tmp/gsvenv && /tmp/gsvenv/bin/pip install 'genro-storage[s3]==0.8.4'
  cargo build --release --example parallel_pattern --bin genro-storage
  python3 benches/library_vs_python.py --python /tmp/gsvenv/bin/python [--rounds 5] [--n 200]
"""
import argparse, json, os, socket, statistics, subprocess, sys, tempfile, time, urllib.request

from benchlib import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")

PY_PATTERN = r'''
import asyncio, sys, time
from genro_storage import StorageManager
endpoint, bucket, prefix, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = StorageManager()
s.configure([{"name": "s3", "protocol": "s3", "bucket": bucket, "endpoint_url": endpoint,
              "access_key": "bench", "secret_key": "bench-secret", "region": "us-east-1"}])
nodes = [s.node(f"s3:{prefix}/f{i}.txt") for i in range(n)]
body = b"x" * 4096
async def main():
    t = time.perf_counter()
    await asyncio.gather(*[f.write_bytes(body) for f in nodes])
    data = await asyncio.gather(*[f.read_bytes() for f in nodes])
    assert all(len(d) == 4096 for d in data)
    return time.perf_counter() - t
print(asyncio.run(main()))
'''

PY_COPY = r'''
import sys, time
from genro_storage import StorageManager
endpoint, bucket, prefix, src = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
s = StorageManager()
s.configure([{"name": "s3", "protocol": "s3", "bucket": bucket, "endpoint_url": endpoint,
              "access_key": "bench", "secret_key": "bench-secret", "region": "us-east-1"},
             {"name": "local", "protocol": "local", "base_path": src}])
t = time.perf_counter()
s.node("local:").copy_to(s.node(f"s3:{prefix}"))
print(time.perf_counter() - t)
'''


def log_lines(path):
    with open(path, "rb") as f:
        return sum(1 for l in f if b'HTTP/1.1" ' in l)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default="/tmp/gsvenv/bin/python")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    env = dict(os.environ)
    env.pop("AWS_CA_BUNDLE", None)
    for k in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(k, None)
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    work = tempfile.mkdtemp(prefix="genro-bench-lib-")
    log = os.path.join(work, "moto.log")
    moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.1)
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/bench", method="PUT")).read()
        # the tree: 500 x 4 KiB + 4 x 32 MiB
        src = os.path.join(work, "tree")
        os.makedirs(os.path.join(src, "small"))
        for i in range(500):
            with open(os.path.join(src, "small", f"f{i}"), "wb") as f:
                f.write(os.urandom(4096))
        for i in range(4):
            with open(os.path.join(src, f"big{i}"), "wb") as f:
                f.write(os.urandom(32 << 20))
        cfg = os.path.join(work, "mounts.toml")
        with open(cfg, "w") as f:
            f.write(f'[[mount]]\nname = "s3"\nprotocol = "s3"\nbucket = "bench"\nendpoint_url = "{endpoint}"\n'
                    f'access_key = "bench"\nsecret_key = "bench-secret"\n'
                    f'[[mount]]\nname = "local"\nprotocol = "local"\nroot_path = "{src}"\n')
        os.chmod(cfg, 0o600)
        res = {"pattern": {"python": [], "rust": [], "python_requests": [], "rust_requests": []},
               "copy": {"python": [], "rust": [], "python_requests": [], "rust_requests": []}}
        for r in range(a.rounds):
            for side in ("python", "rust"):
                before = log_lines(log)
                if side == "python":
                    out = subprocess.run([a.python, "-c", PY_PATTERN, endpoint, "bench", f"py{r}", str(a.n)],
                                         env=env, capture_output=True, text=True, check=True).stdout
                    secs = float(out.strip().splitlines()[-1])
                else:
                    out = subprocess.run([os.path.join(REL, "examples", "parallel_pattern"), endpoint, "bench",
                                          f"rs{r}", str(a.n)], env=env, capture_output=True, text=True,
                                         check=True).stdout
                    secs = json.loads(out.strip().splitlines()[-1])["seconds"]
                time.sleep(0.3)
                res["pattern"][side].append(secs)
                res["pattern"][side + "_requests"].append(log_lines(log) - before)
            for side in ("python", "rust"):
                before = log_lines(log)
                if side == "python":
                    out = subprocess.run([a.python, "-c", PY_COPY, endpoint, "bench", f"pycopy{r}", src],
                                         env=env, capture_output=True, text=True, check=True).stdout
                    secs = float(out.strip().splitlines()[-1])
                else:
                    t = time.perf_counter()
                    subprocess.run([os.path.join(REL, "genro-storage"), "--config", cfg, "cp", "-r",
                                    "local:", f"s3:rscopy{r}"], env=env, capture_output=True, check=True)
                    secs = time.perf_counter() - t
                time.sleep(0.3)
                res["copy"][side].append(secs)
                res["copy"][side + "_requests"].append(log_lines(log) - before)
        print(f"{a.rounds} alternating rounds on moto ({endpoint}); medians:")
        for name, what in (("pattern", f"{a.n} writes then {a.n} reads, join_all/gather"),
                           ("copy", "tree copy local -> S3, 500 x 4 KiB + 4 x 32 MiB")):
            d = res[name]
            py, rs = statistics.median(d["python"]), statistics.median(d["rust"])
            d["ratio"] = py / rs
            print(f"  {what}: Python {py:.3f} s ({statistics.median(d['python_requests']):.0f} requests), "
                  f"Rust {rs:.3f} s ({statistics.median(d['rust_requests']):.0f} requests): ratio {py / rs:.2f}x")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(res, f, indent=1)
    finally:
        os.killpg(moto.pid, 15)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
