#!/bin/bash
# xfstests (github.com/kdave/xfstests) on the daemon, as its README.fuse runs FUSE filesystems:
# FSTYP=fuse, FUSE_SUBTYP=.genro-storage, the /sbin/mount.fuse.genro-storage helper, and one
# config file per device (the helper shows it as the mount's source, which is how xfstests
# finds TEST_DEV and SCRATCH_DEV), each served at the root with `mount=NAME`. `subtype=` (empty)
# makes the type plain `fuse`, the one xfstests' FSTYP=fuse checks for in df.
#
#   scripts/xfstests.sh local|memory [check arguments, default: -g quick]
#
# XFSTESTS names a built xfstests tree (default /tmp/xfst: fetch kdave/xfstests, then
# `make configure && ./configure && make -j2`; ../shared/notes/conformance.md has its
# build dependencies). Run as root. Results: $XFSTESTS/results/check.log and the summary the
# script prints; figures are in BENCHMARKS.md ("xfstests").
set -euo pipefail
backend=${1:?usage: scripts/xfstests.sh local|memory [check args]}
shift
[ $# -gt 0 ] || set -- -g quick
repo=$(cd "$(dirname "$0")/.." && pwd)
xfs=${XFSTESTS:-/tmp/xfst}
[ -x "$xfs/check" ] && [ -x "$xfs/ltp/fsx" ] || {
	echo "no built xfstests tree at $xfs (set XFSTESTS)" >&2
	exit 2
}
[ "$(id -u)" = 0 ] || { echo "xfstests runs as root" >&2; exit 2; }

cargo build --release --manifest-path "$repo/Cargo.toml" >&2
bin=$repo/target/release/genro-storage
ln -sf "$bin" /sbin/mount.fuse.genro-storage

# The users and groups xfstests' permission tests switch to.
getent group fsgqa >/dev/null || groupadd fsgqa
getent passwd fsgqa >/dev/null || useradd -g fsgqa -M -d / -s /bin/bash fsgqa
getent passwd 123456-fsgqa >/dev/null || useradd -M -d / -s /bin/bash 123456-fsgqa
getent passwd fsgqa2 >/dev/null || useradd -M -d / -s /bin/bash fsgqa2

work=${WORK:-/tmp/genro-xfstests/$backend}
for d in test scratch; do
	mountpoint -q "$work/mnt/$d" && umount -l "$work/mnt/$d"
done
rm -rf "$work"
mkdir -p "$work/mnt/test" "$work/mnt/scratch" "$work/test" "$work/scratch"
for d in test scratch; do
	case $backend in
	local) body="protocol = \"local\"
root_path = \"$work/$d\"" ;;
	memory) body="protocol = \"memory\"
max_size = \"${MAX_SIZE:-4GiB}\"" ;;
	*) echo "backend: local or memory" >&2; exit 2 ;;
	esac
	cat >"$work/$d.toml" <<EOF
[[mount]]
name = "$d"
$body
EOF
done

cat >"$xfs/local.config" <<EOF
export TEST_DEV=$work/test.toml
export TEST_DIR=$work/mnt/test
export SCRATCH_DEV=$work/scratch.toml
export SCRATCH_MNT=$work/mnt/scratch
export FSTYP=fuse
export FUSE_SUBTYP=.genro-storage
export TEST_FS_MOUNT_OPTS="-omount=test,subtype=,allow_other,allow_dev,allow_suid,log_file=$work/test.log"
export MOUNT_OPTIONS="-omount=scratch,subtype=,allow_other,allow_dev,allow_suid,log_file=$work/scratch.log"
EOF
mount -t fuse.genro-storage $(sed -n 's/.*TEST_FS_MOUNT_OPTS="\(.*\)"/\1/p' "$xfs/local.config") \
	"$work/test.toml" "$work/mnt/test"

cd "$xfs"
rm -rf results
set +e
./check "$@"
rc=$?
set -e
for d in test scratch; do
	mountpoint -q "$work/mnt/$d" && umount "$work/mnt/$d"
done
echo "== $backend (results in $xfs/results/check.log)"
tail -n 4 results/check.log 2>/dev/null || true
exit $rc
