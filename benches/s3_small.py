#!/usr/bin/env python3
"""Small files on S3 through the mount: genro-storage's daemon (defaults) beside s3fs on one
moto server, in alternating rounds (g, s3fs, g, s3fs, ...). Each round, on each target: N × 4
KiB files created by a Python loop (open, write, close), caches dropped, read back by the same
loop, then unlinked. Reports medians per phase, the ratio (ours over s3fs's rate: > 1 means
we are faster) and the requests each phase sent per file, counted in moto's request log.

  cargo build --release --bin genro-storage
  python3 benches/s3_small.py [--rounds 5] [--n 300] [--json out.json]
  python3 benches/s3_small.py --endpoint http://127.0.0.1:PORT --access-key K --secret-key S
      (another server, e.g. scripts/ceph-rgw.sh's; its requests are not counted)

Needs root, /dev/fuse, moto_server and s3fs (apt-get install s3fs fuse3).
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time, urllib.request

from benchlib import drop_caches, free_port, wait_mounted

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "genro-storage")
ENV = {k: v for k, v in os.environ.items()
       if k not in ("AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
ENV["AWS_EC2_METADATA_DISABLED"] = "true"


def requests_in(log):
    if log is None:
        return 0
    with open(log, "rb") as f:
        return sum(1 for l in f if b'HTTP/1.1" ' in l)


def phases(d, n, log, block):
    """create, read, unlink of n files in a fresh directory d: {phase: (files/s, requests/file)}."""
    out = {}
    os.mkdir(d)
    names = [os.path.join(d, f"f{i:04}") for i in range(n)]

    def timed(name, body):
        before = requests_in(log)
        t = time.perf_counter()
        body()
        el = time.perf_counter() - t
        time.sleep(0.3)  # (moto logs a request after answering it)
        out[name] = (n / el, (requests_in(log) - before) / n)

    def create():
        for p in names:
            with open(p, "wb") as fh:
                fh.write(block)

    def read():
        for p in names:
            with open(p, "rb") as fh:
                assert len(fh.read()) == len(block)

    def unlink():
        for p in names:
            os.unlink(p)

    drop_caches()
    timed("create", create)
    time.sleep(1.2)  # past the daemon's default cache_ttl: the reads ask the server
    drop_caches()
    timed("read", read)
    timed("unlink", unlink)
    os.rmdir(d)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--json", default=None)
    ap.add_argument("--endpoint", default=None, help="an S3 server already running (default: moto started here)")
    ap.add_argument("--access-key", default="bench")
    ap.add_argument("--secret-key", default="bench-secret")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="genro-bench-s3small-")
    procs = []
    mounts = []
    suffix = f"{os.getpid()}"
    buckets = (f"genro-{suffix}", f"s3fs-{suffix}")
    try:
        if a.endpoint is None:
            port = free_port()
            endpoint = f"http://127.0.0.1:{port}"
            log = os.path.join(work, "moto.log")
            procs.append(subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                                          stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                                          start_new_session=True))
            for _ in range(100):
                try:
                    urllib.request.urlopen(endpoint, timeout=1)
                    break
                except Exception:
                    time.sleep(0.1)
            for b in buckets:
                urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{b}", method="PUT"))
        else:
            import boto3
            endpoint, log = a.endpoint, None
            c = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=a.access_key,
                             aws_secret_access_key=a.secret_key, region_name="us-east-1")
            for b in buckets:
                c.create_bucket(Bucket=b)
        cfg = os.path.join(work, "mounts.toml")
        with open(cfg, "w") as f:
            f.write(f'[[mount]]\nname = "s3"\nprotocol = "s3"\nbucket = "{buckets[0]}"\nendpoint_url = "{endpoint}"\n'
                    f'region = "us-east-1"\naccess_key = "{a.access_key}"\nsecret_key = "{a.secret_key}"\n')
        os.chmod(cfg, 0o600)
        g = os.path.join(work, "g")
        os.makedirs(g)
        d = subprocess.Popen([BIN, "mount", g, "--config", cfg], env=ENV,
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "daemon.log"), "wb"),
                             start_new_session=True)
        procs.append(d)
        wait_mounted(g, proc=d)
        mounts.append(g)
        sf = os.path.join(work, "s3fs")
        os.makedirs(sf)
        pw = os.path.join(work, "s3fs.passwd")
        with open(pw, "w") as f:
            f.write(f"{a.access_key}:{a.secret_key}\n")
        os.chmod(pw, 0o600)
        subprocess.run(["s3fs", buckets[1], sf, "-o", f"url={endpoint}", "-o", "use_path_request_style",
                        "-o", f"passwd_file={pw}"], env=ENV, check=True)
        wait_mounted(sf)
        mounts.append(sf)
        targets = [("g-s3", os.path.join(g, "s3")), ("s3fs", sf)]
        block = os.urandom(4096)
        res = {t: {} for t, _ in targets}
        for r in range(a.rounds):
            order = targets if r % 2 == 0 else targets[::-1]
            for name, root in order:
                got = phases(os.path.join(root, f"r{r}"), a.n, log, block)
                for ph, v in got.items():
                    res[name].setdefault(ph, []).append(v)
                print(f"round {r} {name}: " + ", ".join(f"{ph} {v[0]:.0f}/s {v[1]:.2f} req" for ph, v in got.items()),
                      file=sys.stderr, flush=True)
        summary = {}
        print(f"\n{a.n} × 4 KiB files on {'moto' if log else endpoint}, {a.rounds} alternating rounds, "
              f"medians (files/s)" + (", requests per file in moto's log" if log else ", requests not counted"))
        print("phase | g-s3 | s3fs | ratio g/s3fs | requests/file g-s3 | s3fs")
        print("---|---|---|---|---|---")
        for ph in ("create", "read", "unlink"):
            gm = statistics.median(v[0] for v in res["g-s3"][ph])
            sm = statistics.median(v[0] for v in res["s3fs"][ph])
            gq = statistics.median(v[1] for v in res["g-s3"][ph])
            sq = statistics.median(v[1] for v in res["s3fs"][ph])
            summary[ph] = {"g": gm, "s3fs": sm, "ratio": gm / sm, "g_req": gq, "s3fs_req": sq,
                           "g_runs": [v[0] for v in res["g-s3"][ph]],
                           "s3fs_runs": [v[0] for v in res["s3fs"][ph]]}
            if log:
                print(f"{ph} | {gm:,.0f} | {sm:,.0f} | {gm / sm:.2f}× | {gq:.2f} | {sq:.2f}")
            else:
                print(f"{ph} | {gm:,.0f} | {sm:,.0f} | {gm / sm:.2f}× | – | –")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(summary, f, indent=1)
    finally:
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)
        for p in reversed(procs):
            try:
                os.killpg(p.pid, 15)
            except Exception:
                pass
            p.wait()


if __name__ == "__main__":
    main()
