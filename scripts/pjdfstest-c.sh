#!/bin/bash
# The C pjdfstest (github.com/pjd/pjdfstest, built in /tmp/cpjd: autoreconf -ifs && ./configure
# && make pjdfstest) on a local, a memory and an S3 mount (moto on 127.0.0.1:5055) of one
# release daemon. Prints "TARGET: ok N not-ok N" per target (TODO lines left out). Not in
# .ci/run: about 3.5 minutes per target.
W=/tmp/cpjd-work; rm -rf $W; mkdir -p $W/mnt $W/local; chmod 755 $W
python3 -c "
import boto3
boto3.client('s3', endpoint_url='http://127.0.0.1:5055', aws_access_key_id='k', aws_secret_access_key='s', region_name='us-east-1').create_bucket(Bucket='cpjd')"
cat > $W/m.toml <<T
[[mount]]
name = "local"
protocol = "local"
root_path = "$W/local"
[[mount]]
name = "mem"
protocol = "memory"
[[mount]]
name = "s3"
protocol = "s3"
bucket = "cpjd"
endpoint_url = "http://127.0.0.1:5055"
access_key = "k"
secret_key = "s"
T
chmod 600 $W/m.toml
setsid /work/main/target/release/genro-storage mount $W/mnt --config $W/m.toml --allow-other > $W/daemon.log 2>&1 &
sleep 2
for t in local mem s3; do
  mkdir -p $W/mnt/$t/run; cd $W/mnt/$t/run
  echo "== $t $(date +%T)"
  timeout 1200 prove -rv /tmp/cpjd/tests > $W/$t.tap 2>&1; echo "$t: ok $(grep -v "# TODO" $W/$t.tap | grep -c "^ok") not-ok $(grep -v "# TODO" $W/$t.tap | grep -c "^not ok")"
  cd /
done
