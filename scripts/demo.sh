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

# A throw-away SoftHSM2 token under $state/softhsm, with a random PIN in a file.
if ! command -v softhsm2-util >/dev/null || ! command -v swtpm >/dev/null; then
  echo "== installing SoftHSM2 and swtpm"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq softhsm2 swtpm swtpm-tools >/dev/null
fi
module=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do [ -e "$m" ] && module=$m && break; done
sh="$state/softhsm"
mkdir -p "$sh/tokens"
abs=$(cd "$sh" && pwd)
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' "$abs" > "$sh/softhsm2.conf"
export SOFTHSM2_CONF="$abs/softhsm2.conf"
if ! softhsm2-util --show-slots 2>/dev/null | grep -q "Label:.*hsmenv-demo"; then
  echo "== creating SoftHSM2 token hsmenv-demo in $sh"
  head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$sh/pin"
  softhsm2-util --init-token --free --label hsmenv-demo --pin "$(cat "$sh/pin")" --so-pin "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >/dev/null
fi
KEY="pkcs11:token=hsmenv-demo;object=demo-kek?module-path=$module&pin-source=file:$abs/pin"
if ! $hsmenv keys list "${KEY/;object=demo-kek/}" | grep -q '^demo-kek '; then
  echo "== generating a non-extractable AES-256 KEK in the token"
  $hsmenv keygen --type aes-256 --key "$KEY"
fi
echo "== keys on the token"
$hsmenv keys list "${KEY/;object=demo-kek/}"

# A software TPM (swtpm) with its state under $state/swtpm, on a free
# loopback port, stopped when the demo ends; a DEK sealed to it is the
# second KEK.
mkdir -p "$state/swtpm"
tpmstate=$(cd "$state/swtpm" && pwd)
for try in 1 2 3 4 5 6 7 8; do
  port=$((20000 + RANDOM % 20000))
  swtpm socket --tpm2 --tpmstate dir="$tpmstate" --server type=tcp,port=$port,bindaddr=127.0.0.1 \
    --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 --flags not-need-init,startup-clear >"$state/swtpm.log" 2>&1 &
  swtpm_pid=$!
  sleep 0.3
  kill -0 $swtpm_pid 2>/dev/null && break
done
trap 'kill $swtpm_pid 2>/dev/null || true' EXIT
TPMKEY="tpm:seal?device=tcp://127.0.0.1:$port"
echo "== swtpm on 127.0.0.1:$port; checking the TPM"
check=$($hsmenv keygen --key "$TPMKEY")
echo "$check"
# Pin the TPM by its SRK name (as read on first contact), as one should for a
# TPM reached over a socket: another key on the link is then refused.
srk=$(printf '%s\n' "$check" | sed -n 's/.*SRK name \([0-9a-f]*\) .*/\1/p')
[ -n "$srk" ] || { echo "demo: no SRK name in: $check" >&2; exit 1; }
TPMKEY="tpm:seal;srk=$srk?device=tcp://127.0.0.1:$port"

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
$hsmenv encrypt --key "$KEY" --key "$TPMKEY" --context purpose=demo --context host="$(hostname)" -o "$state/input.enc" "$input"
t1=$(now)
echo "   $(rate "$size" "$t0" "$t1")"

echo "== inspect"
$hsmenv inspect "$state/input.enc"

for k in "$KEY" "$TPMKEY"; do
  echo "== decrypt with ${k%%\?*}"
  rm -f "$state/input.dec"
  t0=$(now)
  $hsmenv decrypt --key "$k" --require-context purpose=demo -o "$state/input.dec" "$state/input.enc"
  t1=$(now)
  echo "   $(rate "$size" "$t0" "$t1")"
  cmp "$input" "$state/input.dec"
  echo "   decrypted file is identical"
done

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
