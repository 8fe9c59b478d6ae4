#!/usr/bin/env bash
# Ordinary-tool cases on one directory (a mount's directory, or a native one to compare):
#   scripts/tool-cases.sh DIR
# Prints one line per case and a closing "N passed, M failed".
set -u
dir=${1:?usage: tool-cases.sh DIR}
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
mkdir -p "$src/tree/sub/deep"
for i in $(seq 1 20); do head -c $((i * 997)) /dev/urandom > "$src/tree/f$i.bin"; done
echo "hello world" > "$src/tree/sub/hello.txt"
echo "needle in" > "$src/tree/sub/deep/hay.txt"
ln -s sub/hello.txt "$src/tree/link" 2>/dev/null
mkdir -p "$src/plain/sub" && cp "$src"/tree/f*.bin "$src/plain/" && cp "$src/tree/sub/hello.txt" "$src/plain/sub/"
# rsync: the machine's, else Debian's unpacked by scripts/test-servers.sh (with its libpopt)
if ! command -v rsync >/dev/null; then
    here=$(cd "$(dirname "$0")" && pwd)
    bash "$here/test-servers.sh" install >/dev/null 2>&1
    rsync_bin=$(bash "$here/test-servers.sh" path rsync)
    rsync_root=$(dirname "$(dirname "$(dirname "$rsync_bin")")")
    rsync() {
        LD_LIBRARY_PATH="$rsync_root/lib/x86_64-linux-gnu:$rsync_root/usr/lib/x86_64-linux-gnu" \
            "$rsync_bin" "$@"
    }
fi
pass=0 fail=0
case_() {
    local name=$1; shift
    local w="$dir/case-$name"
    rm -rf "$w" 2>/dev/null; mkdir -p "$w"
    if (cd "$w" && eval "$*") >"$src/out" 2>&1; then
        pass=$((pass + 1)); echo "ok    $name"
    else
        fail=$((fail + 1)); echo "FAIL  $name: $(tail -3 "$src/out" | tr '\n' ' ')"
    fi
    rm -rf "$w" 2>/dev/null
}
case_ ls_l          'touch a && ls -l a | grep -q "^-"'
case_ cat           'echo hi > a && test "$(cat a)" = hi'
case_ cp            'cp "$src/plain/f3.bin" . && cmp f3.bin "$src/plain/f3.bin"'
case_ cp_r_diff     'cp -r "$src/plain" p && diff -r "$src/plain" p'
case_ cp_a          'cp -a "$src/plain" p && diff -r "$src/plain" p && test "$(stat -c %Y p/f1.bin)" = "$(stat -c %Y "$src/plain/f1.bin")"'
case_ mv_file       'echo x > a && mv a b && test ! -e a && test "$(cat b)" = x'
case_ mv_dir        'cp -r "$src/plain" p && mv p q && diff -r "$src/plain" q && test ! -e p'
case_ mv_replace    'echo 1 > a && echo 2 > b && mv a b && test "$(cat b)" = 1'
case_ rm_r          'cp -r "$src/plain" p && rm -r p && test ! -e p'
case_ rm_rf_missing 'rm -rf nothing'
case_ mkdir_p       'mkdir -p a/b/c && test -d a/b/c'
case_ rmdir         'mkdir d && rmdir d && test ! -e d'
case_ rmdir_nonempty 'mkdir d && touch d/x && ! rmdir d 2>/dev/null'
case_ touch_new     'touch a && test -f a && test ! -s a'
case_ touch_date    'touch a && touch -d "2001-01-01 00:00:00" a && test "$(date -r a +%Y)" = 2001'
case_ echo_append   'echo a > f && echo b >> f && test "$(cat f)" = "$(printf "a\nb")"'
case_ truncate_shrink 'printf 123456 > f && truncate -s 2 f && test "$(cat f)" = 12'
case_ truncate_grow 'printf 12 > f && truncate -s 1M f && test $(stat -c %s f) = 1048576'
case_ dd_seek       'printf 0123456789 > f && printf XY | dd of=f bs=1 seek=3 conv=notrunc status=none && test "$(cat f)" = 012XY56789'
case_ dd_big        'dd if=/dev/urandom of=f bs=1M count=20 status=none && test $(stat -c %s f) = 20971520'
case_ sed_i         'echo "a b" > f && sed -i s/a/z/ f && test "$(cat f)" = "z b"'
case_ tar_c         'tar -C "$src" -cf x.tar plain && tar -tf x.tar | grep -q f1.bin'
case_ tar_x         'tar -C "$src" -cf - plain | tar -xf - && diff -r "$src/plain" plain'
case_ tar_gz        'tar -C "$src" -czf x.tgz plain && mkdir o && tar -C o -xzf x.tgz && diff -r "$src/plain" o/plain'
case_ find          'cp -r "$src/plain" p && test "$(find p -type f | wc -l)" = 21'
case_ grep_r        'cp -r "$src/tree/sub" s && grep -rq needle s'
case_ du            'cp -r "$src/plain" p && du -s p >/dev/null'
case_ stat          'echo x > f && stat f >/dev/null'
case_ chmod         'echo x > f && chmod 600 f && test "$(stat -c %a f)" = 600'
case_ head_tail     'seq 1 1000 > f && test "$(head -1 f)" = 1 && test "$(tail -1 f)" = 1000'
case_ wc            'seq 1 100 > f && test "$(wc -l < f)" = 100'
case_ gzip          'seq 1 10000 > f && gzip f && gunzip f.gz && test "$(wc -l < f)" = 10000'
case_ sort_o        'seq 10 -1 1 > f && sort -n -o f f && test "$(head -1 f)" = 1'
case_ ln_s          'echo x > f && ln -s f l && test "$(readlink l)" = f && test "$(cat l)" = x'
case_ noclobber_excl 'set -C; echo a > f; ! (echo b > f) 2>/dev/null'
case_ python_write  'python3 -c "open(\"f\",\"w\").write(\"x\"*100000)" && test $(stat -c %s f) = 100000'
case_ python_rw     'python3 -c "
f=open(\"f\",\"w+b\"); f.write(b\"abcdef\"); f.seek(2); f.write(b\"ZZ\"); f.seek(0); assert f.read()==b\"abZZef\"; f.close()"'
case_ mmap_read     'seq 1 1000 > f && python3 -c "
import mmap; f=open(\"f\",\"rb\"); m=mmap.mmap(f.fileno(),0,access=mmap.ACCESS_READ); assert m[:2]==b\"1\n\""'
case_ vim_save      'echo old > f && vim -Es -u NONE -c "%s/old/new/" -c wq f && test "$(cat f)" = new'
case_ rsync_a       'rsync -a "$src/plain/" p/ && diff -r "$src/plain" p'
case_ sqlite        'sqlite3 db.sqlite "create table t(x); insert into t values (1),(2);" && test "$(sqlite3 db.sqlite "select count(*) from t")" = 2'
case_ git_init      'git init -q r && cd r && echo x > a && git add a && git -c user.email=a@b -c user.name=n commit -qm m && git log --oneline | grep -q m'
echo "$pass passed, $fail failed"
