#!/usr/bin/env bash
# The main job of hsmenv, end to end, on throw-away keys under .state/demo:
# build the CLI, make a key, encrypt a real file, show the header, decrypt it,
# compare, and print the throughput. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

state=.state/demo
mkdir -p "$state"
go build -o bin/hsmenv ./cmd/hsmenv
hsmenv=bin/hsmenv

now() { date +%s.%N; }
rate() { awk -v b="$1" -v s="$2" -v e="$3" 'BEGIN { t = e - s; printf "%.0f MB/s (%.3f s)", b / t / 1e6, t }'; }

# A throw-away software AES KEK (the PKCS#11 and TPM KEKs come with their issues).
[ -s "$state/aes.key" ] || head -c 32 /dev/urandom > "$state/aes.key"
KEY="raw-aes:namespace=hsmenv-demo;name=demo-aes?key-file=$state/aes.key"

# A real file: the hsmenv binary just built, repeated to 256 MiB.
input="$state/input.bin"
if [ ! -s "$input" ]; then
  while [ "$(stat -c %s "$input" 2>/dev/null || echo 0)" -lt $((256 << 20)) ]; do cat "$hsmenv" >> "$input"; done
  truncate -s $((256 << 20)) "$input"
fi
size=$(stat -c %s "$input")
rm -f "$state/input.enc" "$state/input.dec"

echo "== encrypt $size bytes"
t0=$(now)
$hsmenv encrypt --key "$KEY" --context purpose=demo --context host="$(hostname)" -o "$state/input.enc" "$input"
t1=$(now)
echo "   $(rate "$size" "$t0" "$t1")"

echo "== inspect"
$hsmenv inspect "$state/input.enc"

echo "== decrypt"
t0=$(now)
$hsmenv decrypt --key "$KEY" --require-context purpose=demo -o "$state/input.dec" "$state/input.enc"
t1=$(now)
echo "   $(rate "$size" "$t0" "$t1")"
cmp "$input" "$state/input.dec"
echo "== decrypted file is identical"

echo "== ranged decrypt of bytes 100000000:100004096"
$hsmenv decrypt --key "$KEY" --range 100000000:100004096 "$state/input.enc" | cmp - <(tail -c +100000001 "$input" | head -c 4096)
echo "   identical to the same bytes of the input"

echo "== throughput without the disk (output to /dev/null; the runs above include fsync)"
t0=$(now); $hsmenv encrypt --key "$KEY" -o /dev/null "$input"; t1=$(now)
echo "   encrypt $(rate "$size" "$t0" "$t1")"
t0=$(now); $hsmenv decrypt --key "$KEY" -o /dev/null "$state/input.enc"; t1=$(now)
echo "   decrypt $(rate "$size" "$t0" "$t1")"

echo "== a wrong context is refused, and leaves no output"
if $hsmenv decrypt --key "$KEY" --require-context purpose=other -o "$state/wrong.dec" "$state/input.enc"; then
  echo "demo: decrypt with a wrong context succeeded" >&2; exit 1
fi
[ ! -e "$state/wrong.dec" ]
echo "demo: OK"
