#!/usr/bin/env bash
# Ceph RGW on 127.0.0.1 for the S3 suite: one mon, one memstore OSD and radosgw, cephx off,
# an S3 user with the tests' keys and the tests' bucket.
#   scripts/ceph-rgw.sh start DIR   start; prints "endpoint http://127.0.0.1:P" when ready
#   scripts/ceph-rgw.sh stop DIR    kill the three daemons' process groups
# Needs Debian's ceph-mon ceph-osd radosgw ceph-common (.ci/run installs them) and python3
# with boto3 (moto brings it). Each daemon runs in the foreground (-f) in its own process
# group; their PIDs are in DIR/pids (daemonized, ceph leaves no usable pid file).
set -euo pipefail
cmd=${1:?usage: ceph-rgw.sh start|stop DIR}
dir=${2:?usage: ceph-rgw.sh start|stop DIR}
access=${GENRO_RGW_ACCESS_KEY:-genro-test}
secret=${GENRO_RGW_SECRET_KEY:-genro-test-secret}
bucket=${GENRO_RGW_BUCKET:-genro-test}

stop() {
    [ -f "$dir/pids" ] || return 0
    while read -r pid; do kill -KILL -- "-$pid" 2>/dev/null || true; done <"$dir/pids"
    rm -f "$dir/pids"
}
if [ "$cmd" = stop ]; then stop; exit 0; fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_once() {
rm -rf "$dir" && mkdir -p "$dir"/{run,log,mon,osd0,rgw}
dir=$(cd "$dir" && pwd)
mon_port=$(free_port)
rgw_port=$(free_port)
fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
conf=$dir/ceph.conf
cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
ms bind msgr2 = false
ms bind ipv4 = true
ms bind ipv6 = false
public addr = 127.0.0.1
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd objectstore = memstore
memstore device bytes = 2147483648
run dir = $dir/run
log file = $dir/log/\$name.log
admin socket = $dir/run/\$name.asok
[mon.a]
mon data = $dir/mon
[osd.0]
osd data = $dir/osd0
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw data = $dir/rgw
rgw thread pool size = 64
EOF
# foreground daemon in its own process group; its PID recorded
run_bg() {
    local name=$1; shift
    setsid "$@" >"$dir/log/$name.out" 2>&1 </dev/null &
    echo $! >>"$dir/pids"
}
c() { ceph -c "$conf" --connect-timeout 15 "$@"; }

monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" >/dev/null 2>&1
run_bg mon ceph-mon -f -c "$conf" -i a
# memstore's OSD sometimes boots with another uuid than the one its mkfs was given and the
# map holds, and the monitor refuses it ("wrong fsid": about one start in three); then the
# whole start is tried again (start_once fails, below).
osd_uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
osd=$(c osd new "$osd_uuid")
ceph-osd -c "$conf" -i "$osd" --mkfs --osd-uuid "$osd_uuid" >"$dir/log/osd-mkfs.out" 2>&1
run_bg osd ceph-osd -f -c "$conf" -i "$osd"
run_bg rgw radosgw -f -c "$conf" -n client.rgw.a
up=
for _ in $(seq 1 160); do  # (up to 40 s; a good start takes about 15)
    if python3 -c "import socket; socket.create_connection(('127.0.0.1',$rgw_port),1)" 2>/dev/null; then up=1; break; fi
    sleep 0.25
done
if [ -z "$up" ]; then
    echo "radosgw did not listen on 127.0.0.1:$rgw_port within 40 s; logs in $dir/log" >&2
    return 1
fi
timeout 60 radosgw-admin -c "$conf" user create --uid=genro --display-name=genro \
    --access-key="$access" --secret-key="$secret" >/dev/null
python3 - "$rgw_port" "$access" "$secret" "$bucket" <<'EOF'
import sys, time, boto3, botocore
port, access, secret, bucket = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=access,
                  aws_secret_access_key=secret, region_name="us-east-1")
for attempt in range(120):
    try:
        s3.create_bucket(Bucket=bucket)
        break
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            break
        time.sleep(0.5)
    except Exception:
        time.sleep(0.5)
else:
    sys.exit("RGW did not create the bucket")
EOF
    [ $? -eq 0 ] || return 1
    echo "endpoint http://127.0.0.1:$rgw_port"
}

for attempt in 1 2 3; do
    stop
    if start_once; then exit 0; fi
    echo "ceph-rgw: start $attempt of 3 failed" >&2
done
stop
exit 1
