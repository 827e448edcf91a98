#!/bin/sh
# bench-batch.sh: the per-file cost of one hsmenv process per file against
# one batch run, with a software key (raw-aes) and a SoftHSM2 AES key.
#
#   scripts/bench-batch.sh [FILES] [BYTES]     (default 200 files of 1024 bytes)
#
# Needs softhsm2-util and /usr/lib/softhsm/libsofthsm2.so for the second
# half. Everything lives in a temporary directory, removed at the end.
set -eu
n=${1:-200}
size=${2:-1024}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/hsmenv" ./cmd/hsmenv)
B=$tmp/hsmenv
mkdir "$tmp/in"
i=0
while [ "$i" -lt "$n" ]; do
	head -c "$size" /dev/urandom > "$tmp/in/f$i"
	i=$((i + 1))
done

now() { date +%s%N; }
# run NAME KEY: one process per file, then one batch, then batch decrypt.
run() {
	rm -rf "$tmp/one" "$tmp/batch" "$tmp/back"
	mkdir "$tmp/one" "$tmp/batch" "$tmp/back"
	t0=$(now)
	for f in "$tmp"/in/*; do
		"$B" encrypt -q --key "$2" -o "$tmp/one/${f##*/}.enc" "$f"
	done
	t1=$(now)
	"$B" encrypt -q --key "$2" -o "$tmp/batch" "$tmp"/in/*
	t2=$(now)
	"$B" decrypt -q --key "$2" -o "$tmp/back" "$tmp"/batch/*.enc
	t3=$(now)
	for f in "$tmp"/in/*; do cmp -s "$f" "$tmp/back/${f##*/}" || { echo "$f: round trip differs" >&2; exit 1; }; done
	printf '%-10s %5d files: one process each %7.1f ms/file (%6.2f s) | one batch %6.2f ms/file (%5.2f s) | batch decrypt %6.2f ms/file\n' \
		"$1" "$n" "$(echo "($t1-$t0)/1000000/$n" | bc -l)" "$(echo "($t1-$t0)/1000000000" | bc -l)" \
		"$(echo "($t2-$t1)/1000000/$n" | bc -l)" "$(echo "($t2-$t1)/1000000000" | bc -l)" "$(echo "($t3-$t2)/1000000/$n" | bc -l)"
}

head -c 32 /dev/urandom > "$tmp/aes.key"
run raw-aes "raw-aes:namespace=bench;name=k?key-file=$tmp/aes.key"

mod=/usr/lib/softhsm/libsofthsm2.so
if command -v softhsm2-util > /dev/null && [ -e "$mod" ]; then
	mkdir "$tmp/tokens"
	printf 'directories.tokendir = %s/tokens\nlog.level = ERROR\n' "$tmp" > "$tmp/softhsm2.conf"
	export SOFTHSM2_CONF=$tmp/softhsm2.conf
	echo 1234 > "$tmp/pin"
	softhsm2-util --init-token --free --label bench --so-pin 5678 --pin 1234 > /dev/null
	K="pkcs11:token=bench;object=kek?module-path=$mod&pin-source=file:$tmp/pin"
	"$B" keygen --type aes-256 --key "$K" > /dev/null
	run softhsm2 "$K"
else
	echo "softhsm2: not installed, skipped"
fi
