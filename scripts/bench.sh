#!/usr/bin/env bash
# `make bench`: one run that measures hsmenv on this machine and regenerates
# docs/benchmarks.md (a generated file: do not edit it by hand), keeping the
# sections after its "measured by other scripts" marker.
#
#   1. bulk: a page-cached 1 GiB file encrypted and decrypted to /dev/null by
#      the hsmenv CLI (suites 0478 and 0578; raw AES KEK, and the SoftHSM2 KEK
#      once), against the AES-GCM ceiling and the zero-copy ceiling (the same
#      file mapped and sealed or opened with AES-256-GCM on all cores,
#      internal/ceiling) measured in the same run, age (X25519) and the AWS
#      Encryption SDK for JavaScript (streaming)
#   2. peak RSS of encrypt and decrypt of 64 MiB, 1 GiB and 4 GiB (sparse)
#   3. 1 KiB messages per second: SoftHSM2 KEK uncached and cached, TPM KEKs on
#      swtpm uncached, beside bare miekg/pkcs11 and go-tpm loops
#   4. ranged decrypt: 4 KiB at random offsets of a 1 GiB message
#   5. the frame size sweep behind DefaultFrameSize
#
# Throw-away SoftHSM2 token, swtpm (loopback) and files live in one temporary
# directory, removed on exit. Targets are computed from the figures (PASS or
# MISS); a section that fails is reported as such and makes the exit status 1,
# the document is written all the same.
#
# Knobs: BENCH_RUNS (hsmenv 0478 runs, both KEKs, default 5), BENCH_RUNS_SLOW
# (0578 and age runs, default 3), BENCH_RUNS_JS (JS ESDK runs, default 3),
# BENCH_OUT (default docs/benchmarks.md),
# BENCH_TIMER=loop (do not use hyperfine even if installed).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
. scripts/lib/swtpm.sh
export PATH="$PATH:/usr/local/go/bin"
out=${BENCH_OUT:-docs/benchmarks.md}
RUNS=${BENCH_RUNS:-5}
RUNS_SLOW=${BENCH_RUNS_SLOW:-3}
JS_RUNS=${BENCH_RUNS_JS:-3}
GiB=1073741824

say() { printf '\n== %s\n' "$*" >&2; }

# ---------------------------------------------------------------- tools
say "dependencies"
bash scripts/deps.sh # SoftHSM2, swtpm, Node and the JS ESDK (npm ci)
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
for p in age time jq; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bench: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# hyperfine is optional: without it, a warm-up run then a plain timing loop.
if ! command -v hyperfine >/dev/null && [ "${BENCH_TIMER:-}" != loop ]; then
  echo "bench: trying to install hyperfine (optional)" >&2
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends hyperfine >/dev/null; } ||
    echo "bench: no hyperfine; timing with a loop" >&2
fi
HYPERFINE=""
if command -v hyperfine >/dev/null && [ "${BENCH_TIMER:-}" != loop ]; then HYPERFINE=$(command -v hyperfine); fi

# ---------------------------------------------------------------- work dir
work=$(mktemp -d "${TMPDIR:-/tmp}/hsmenv-bench.XXXXXXXX")
swtpm_pid=""
cleanup() {
  if [ -n "$swtpm_pid" ]; then kill "$swtpm_pid" 2>/dev/null || true; wait "$swtpm_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
avail_kb=$(df -Pk "$work" | awk 'NR==2 {print $4}')
if [ "$avail_kb" -lt $((12 * 1024 * 1024)) ]; then
  echo "bench: $work has $((avail_kb / 1024 / 1024)) GiB free; the run needs about 12 GiB" >&2
  exit 1
fi
# The Go benchmarks keep their files in $TMPDIR/hsmenv-bench: here, so that
# they go away with the rest.
mkdir -p "$work/tmp"
export TMPDIR=$work/tmp

results=$work/results
: >"$results"
put() { printf '%s\t%s\n' "$1" "$2" >>"$results"; }
get() { awk -F'\t' -v k="$1" '$1 == k { v = $2; f = 1 } END { if (f) print v }' "$results"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
med() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# gobench FILE NAME UNIT: the UNIT values of benchmark NAME (no -N suffix), one per -count run.
gobench() {
  awk -v name="$2" -v unit="$3" '$1 ~ /^Benchmark/ { n = $1; sub(/-[0-9]+$/, "", n); if (n != name) next
    for (i = 3; i <= NF; i++) if ($i == unit) print $(i - 1) }' "$1"
}

failures=()
# section NAME FUNCTION: runs FUNCTION in a subshell with errexit; a failure
# is recorded (with the end of its output) and the run goes on.
section() {
  local name=$1 rc
  shift
  say "$name (load average $(load))"
  put "load.$name" "$(load)"
  set +e
  (set -e; "$@") 2>&1 | tee "$work/log-$name"
  rc=${PIPESTATUS[0]}
  set -e
  if ((rc)); then
    failures+=("$name: exit status $rc; last output: $(tail -n 3 "$work/log-$name" | tr '\n' ' ' | cut -c1-400)")
    echo "bench: section $name FAILED (exit $rc)" >&2
  fi
}

# timeit NAME RUNS CMD...: median wall time (s) of RUNS runs after one warm-up.
timeit() {
  local name=$1 runs=$2 i t0 t1 ts=()
  shift 2
  if [ -n "$HYPERFINE" ]; then
    "$HYPERFINE" --shell=bash --style basic --warmup 1 --runs "$runs" --command-name "$name" \
      --export-json "$work/hf-$name.json" "$(printf '%q ' "$@")" >&2
    put "$name" "$(jq '.results[0].median' "$work/hf-$name.json")"
    put "$name.times" "$(jq -r '[.results[0].times[] | . * 1000 | round / 1000 | tostring] | join(" ")' "$work/hf-$name.json")"
  else
    "$@"
    for ((i = 0; i < runs; i++)); do
      t0=$(date +%s%N); "$@"; t1=$(date +%s%N)
      ts+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')")
    done
    put "$name" "$(printf '%s\n' "${ts[@]}" | med)"
    put "$name.times" "${ts[*]}"
    echo "$name: ${ts[*]} s" >&2
  fi
  put "$name.runs" "$runs"
}

# rss NAME CMD...: peak RSS (KiB, the child's ru_maxrss) and wall time of one run.
rss() {
  local name=$1 kb secs
  shift
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%M %e' -o "$work/rss-$name" "$@"
  else
    python3 -c 'import resource, subprocess, sys, time
t = time.monotonic(); subprocess.run(sys.argv[1:], check=True); e = time.monotonic() - t
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, round(e, 2))' "$@" >"$work/rss-$name"
  fi
  read -r kb secs <"$work/rss-$name"
  echo "$name: peak RSS $kb KiB, $secs s" >&2
  put "rss.$name" "$kb"
  put "rss.$name.secs" "$secs"
}

# ---------------------------------------------------------------- machine
put date "$(date -u '+%Y-%m-%d %H:%M UTC')"
put cpu "$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
put nproc "$(nproc)"
put mem "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
put kernel "$(uname -r)"
put aesni "$(grep -qw aes /proc/cpuinfo && echo yes || echo no)"
put go "$(go version | awk '{ print $3 }')"
put commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$([ -z "$(git status --porcelain -- . ':!docs/benchmarks.md' 2>/dev/null)" ] || echo ' + uncommitted changes')"
put node "$(node --version 2>/dev/null || echo none)"
put esdk "$(node -p 'require("./interop/node_modules/@aws-crypto/client-node/package.json").version' 2>/dev/null || echo none)"
put age "$(age --version 2>/dev/null || echo none)"
put softhsm "$(softhsm2-util --version 2>/dev/null || echo none)"
put swtpm "$(swtpm --version 2>/dev/null | head -1 | sed 's/.*version //; s/,.*//' || echo none)"
put timer "$([ -n "$HYPERFINE" ] && "$HYPERFINE" --version || echo 'own loop (date +%s%N)')"
put load.start "$(load)"

say "build"
go build -o "$work/hsmenv" ./cmd/hsmenv
hsmenv=$work/hsmenv
go build -o "$work/ceiling" ./internal/ceiling

# ---------------------------------------------------------------- keys
say "throw-away keys: raw AES, SoftHSM2 token, swtpm"
head -c 32 /dev/urandom >"$work/aes.key"
RAW="raw-aes:namespace=bench;name=k1?key-file=$work/aes.key"
age-keygen -o "$work/age.key" 2>/dev/null
AGE_R=$(age-keygen -y "$work/age.key")

module=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
  [ -e "$m" ] && module=$m && break
done
[ -n "$module" ] || { echo "bench: libsofthsm2.so not found" >&2; exit 1; }
mkdir -p "$work/softhsm/tokens"
printf 'directories.tokendir = %s/softhsm/tokens\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' "$work" >"$work/softhsm/softhsm2.conf"
export SOFTHSM2_CONF=$work/softhsm/softhsm2.conf
(umask 077; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/softhsm/pin")
softhsm2-util --init-token --free --label hsmenv-bench --pin "$(cat "$work/softhsm/pin")" \
  --so-pin "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >/dev/null
P11="pkcs11:token=hsmenv-bench;object=bench-kek?module-path=$module&pin-source=file:$work/softhsm/pin"
"$hsmenv" keygen --type aes-256 --key "$P11"

mkdir -p "$work/swtpm"
start_swtpm "$work/swtpm" "$work/swtpm.log" "$hsmenv" || exit 1
DEV="device=tcp://127.0.0.1:$port"
TPM_SEAL="tpm:seal?$DEV"
TPM_RSA="tpm:key-file=$work/rsa.tpmkey?$DEV"
TPM_ECC="tpm:key-file=$work/ecc.tpmkey?$DEV"
"$hsmenv" keygen --key "$TPM_SEAL"
"$hsmenv" keygen --type rsa-2048 --key "$TPM_RSA"
"$hsmenv" keygen --type ecc-p256 --key "$TPM_ECC"

# ---------------------------------------------------------------- 1. bulk
ceiling() {
  go test -run XXX -bench 'AESGCM(SingleCore|AllCores)$' -count 5 ./envelope/ | tee "$work/go-aesgcm.txt"
  put gcm.single "$(gobench "$work/go-aesgcm.txt" BenchmarkAESGCMSingleCore MB/s | med)"
  put gcm.all "$(gobench "$work/go-aesgcm.txt" BenchmarkAESGCMAllCores MB/s | med)"
}

bulk() {
  local w=$work
  echo "writing a 1 GiB random file and its messages" >&2
  head -c "$GiB" /dev/urandom >"$w/plain1g"
  # One 0478 message with two EDKs (raw AES and SoftHSM2): both decrypt rows
  # read the same file, each with its own key.
  "$hsmenv" encrypt -q --key "$RAW" --key "$P11" "$w/plain1g" >"$w/c0478"
  "$hsmenv" encrypt -q --suite 0578 --key "$RAW" "$w/plain1g" >"$w/c0578"
  age -r "$AGE_R" -o "$w/c.age" "$w/plain1g"
  sync # no write-back competing with the timed runs
  cat "$w/plain1g" "$w/c0478" "$w/c0578" "$w/c.age" >/dev/null # read once: page-cached

  # Raw AES and SoftHSM2 KEK side by side, so that they share conditions.
  timeit enc.0478 "$RUNS" "$hsmenv" encrypt -q --key "$RAW" -o /dev/null "$w/plain1g"
  timeit enc.0478p11 "$RUNS" "$hsmenv" encrypt -q --key "$P11" -o /dev/null "$w/plain1g"
  timeit dec.0478 "$RUNS" "$hsmenv" decrypt -q --key "$RAW" -o /dev/null "$w/c0478"
  timeit dec.0478p11 "$RUNS" "$hsmenv" decrypt -q --key "$P11" -o /dev/null "$w/c0478"
  timeit enc.0578 "$RUNS_SLOW" "$hsmenv" encrypt -q --suite 0578 --key "$RAW" -o /dev/null "$w/plain1g"
  timeit dec.0578 "$RUNS_SLOW" "$hsmenv" decrypt -q --key "$RAW" -o /dev/null "$w/c0578"
  timeit enc.age "$RUNS_SLOW" age -r "$AGE_R" -o /dev/null "$w/plain1g"
  timeit dec.age "$RUNS_SLOW" age -d -i "$w/age.key" -o /dev/null "$w/c.age"
}

# The zero-copy ceiling: the same page-cached file mapped whole and sealed
# with AES-256-GCM in 64 KiB frames on all cores, output thrown away, and a
# sealed copy of it (written, synced and read once by the program, then
# removed) opened the same way; seal and open runs alternate.
zerocopy() {
  local w=$work
  "$w/ceiling" -runs "$RUNS" -sealed "$w/ceiling-sealed" "$w/plain1g" | tee "$w/zerocopy.txt"
  rm -f "$w/ceiling-sealed"
  local op
  for op in seal open; do
    put "zc.$op" "$(awk -v op="$op" '$1 == op { print $2 }' "$w/zerocopy.txt" | med)"
    put "zc.$op.all" "$(awk -v op="$op" '$1 == op { printf "%s%.0f", sep, $2; sep = " " }' "$w/zerocopy.txt")"
  done
  put zc.runs "$RUNS"
}

# The JS ESDK driver writes its output to a temporary file renamed into
# place (never give it /dev/null): a file here, removed at once.
jsesdk() {
  local w=$work i t0 t1 enc=() dec=()
  cat >"$w/esdk.json" <<EOF
{"keyrings": [{"type": "raw-aes", "namespace": "bench", "name": "k1", "keyFile": "aes.key"}],
 "suite": "0478", "frameLength": 65536, "stream": true}
EOF
  for ((i = 0; i < JS_RUNS; i++)); do
    rm -f "$w/c.js" "$w/p.js"
    t0=$(date +%s%N)
    node interop/esdk.js encrypt "$w/esdk.json" "$w/plain1g" "$w/c.js"
    t1=$(date +%s%N)
    enc+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')")
    t0=$(date +%s%N)
    node interop/esdk.js decrypt "$w/esdk.json" "$w/c.js" "$w/p.js" >/dev/null
    t1=$(date +%s%N)
    dec+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')")
    echo "JS ESDK run $((i + 1)): encrypt ${enc[i]} s, decrypt ${dec[i]} s" >&2
  done
  cmp "$w/plain1g" "$w/p.js"
  rm -f "$w/c.js" "$w/p.js"
  put enc.js "$(printf '%s\n' "${enc[@]}" | med)"
  put enc.js.times "${enc[*]}"
  put dec.js "$(printf '%s\n' "${dec[@]}" | med)"
  put dec.js.times "${dec[*]}"
  put js.runs "$JS_RUNS"
}

# ---------------------------------------------------------------- 2. peak RSS
peakrss() {
  local w=$work
  head -c $((64 << 20)) "$w/plain1g" >"$w/plain64m"
  "$hsmenv" encrypt -q --key "$RAW" "$w/plain64m" >"$w/c64m"
  rss enc.64m "$hsmenv" encrypt -q --key "$RAW" -o /dev/null "$w/plain64m"
  rss dec.64m "$hsmenv" decrypt -q --key "$RAW" -o /dev/null "$w/c64m"
  rss enc.1g "$hsmenv" encrypt -q --key "$RAW" -o /dev/null "$w/plain1g"
  rss dec.1g "$hsmenv" decrypt -q --key "$RAW" -o /dev/null "$w/c0478"
  rss enc.1g0578 "$hsmenv" encrypt -q --suite 0578 --key "$RAW" -o /dev/null "$w/plain1g"
  rss dec.1g0578 "$hsmenv" decrypt -q --key "$RAW" -o /dev/null "$w/c0578"
  # The largest frames a decrypter accepts, on more cores than the machine
  # has: memory is bounded in bytes, not frames per core.
  "$hsmenv" encrypt -q --key "$RAW" --frame-size 16777216 "$w/plain1g" >"$w/c16m"
  rss enc.1g16m env GOMAXPROCS=16 "$hsmenv" encrypt -q --key "$RAW" --frame-size 16777216 -o /dev/null "$w/plain1g"
  rss dec.1g16m env GOMAXPROCS=16 "$hsmenv" decrypt -q --key "$RAW" -o /dev/null "$w/c16m"
  rm -f "$w/c16m"
  truncate -s 4G "$w/sparse4g"
  cat "$w/sparse4g" >/dev/null # page-cached, as the other inputs
  rss enc.4g "$hsmenv" encrypt -q --key "$RAW" -o /dev/null "$w/sparse4g"
  "$hsmenv" encrypt -q --key "$RAW" "$w/sparse4g" >"$w/c4g" # no fsync: removed right after
  rss dec.4g "$hsmenv" decrypt -q --key "$RAW" -o /dev/null "$w/c4g"
  rm -f "$w/c4g" "$w/sparse4g" "$w/c64m" "$w/plain64m" "$w/c0578" "$w/c.age"
}

# ---------------------------------------------------------------- 3. small messages
# hb_run NAME I ARGS...: run I of hsmenv bench --json ARGS.
hb_run() {
  local name=$1 i=$2
  shift 2
  "$hsmenv" bench --json "$@" >"$work/hb-$name-$i.json"
  echo "$name run $((i + 1)): $(jq -c '{enc: .encrypt.ops_per_sec, dec: .decrypt.ops_per_sec, enc_p50: .encrypt.p50_us, dec_p50: .decrypt.p50_us, device_calls}' "$work/hb-$name-$i.json")" >&2
}
# hb NAME REPS ARGS...: hsmenv bench --json, REPS times, then hb_sum.
hb() {
  local name=$1 reps=$2 i
  shift 2
  for ((i = 0; i < reps; i++)); do hb_run "$name" "$i" "$@"; done
  hb_sum "$name" "$reps"
}
# hb_sum NAME REPS: medians of ops/s and latencies over the runs, and the runs' range.
hb_sum() {
  local name=$1 reps=$2 i f
  for f in enc:encrypt.ops_per_sec dec:decrypt.ops_per_sec enc_p50:encrypt.p50_us dec_p50:decrypt.p50_us dec_p99:decrypt.p99_us; do
    put "hb.$name.${f%%:*}" "$(for ((i = 0; i < reps; i++)); do jq ".${f#*:}" "$work/hb-$name-$i.json"; done | med)"
  done
  for f in enc:encrypt dec:decrypt; do
    put "hb.$name.${f%%:*}.range" "$(for ((i = 0; i < reps; i++)); do jq ".${f#*:}.ops_per_sec" "$work/hb-$name-$i.json"; done |
      sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f-%.0f", lo, hi }')"
  done
  put "hb.$name.calls" "$(jq '.device_calls // empty' "$work/hb-$name-0.json")"
  put "hb.$name.messages" "$(jq '.messages' "$work/hb-$name-0.json")"
  put "hb.$name.reps" "$reps"
}

# Host work per message: 1 KiB messages through the library on one
# goroutine, cached (one KEK call in all) and uncached through a KEK that
# returns at once (everything but the device: key draw, key schedule,
# header, frame, parsing), and the key schedule alone.
hostwork() {
  go test -run XXX -bench 'SmallMessage|DeriveKeys' -benchtime 2s -count 5 ./envelope/ | tee "$work/go-small.txt"
  local b
  for b in cached/encrypt cached/decrypt uncached-instant-kek/encrypt uncached-instant-kek/decrypt; do
    put "small.$b" "$(gobench "$work/go-small.txt" "BenchmarkSmallMessage/$b" ns/op | med)"
    put "small.$b.all" "$(gobench "$work/go-small.txt" "BenchmarkSmallMessage/$b" ns/op | tr '\n' ' ')"
  done
  put small.derive "$(gobench "$work/go-small.txt" BenchmarkDeriveKeys ns/op | med)"
}

# The uncached runs and the bare loop take turns, so that both see the
# same conditions; medians over the turns.
softhsm() {
  local i g op
  : >"$work/go-softhsm.txt"
  for ((i = 0; i < 5; i++)); do
    hb_run p11.g1 "$i" --key "$P11" --messages 20000 --concurrency 1
    hb_run p11.g2 "$i" --key "$P11" --messages 20000 --concurrency 2
    go test -run XXX -bench SoftHSM -benchtime 20000x -count 1 ./hsm/ | tee -a "$work/go-softhsm.txt"
  done
  hb_sum p11.g1 5
  hb_sum p11.g2 5
  hb p11c.g1 5 --key "$P11" --messages 100000 --concurrency 1 --cache max-age=5m,max-messages=100000
  hb p11c.g2 5 --key "$P11" --messages 100000 --concurrency 2 --cache max-age=5m,max-messages=100000
  for g in 1 2; do
    for op in bare-encrypt bare-decrypt hsmenv-wrap hsmenv-unwrap; do
      put "bare.$op.g$g" "$(gobench "$work/go-softhsm.txt" "BenchmarkSoftHSM/$op/g$g" ns/op | med | awk '{ printf "%.0f", 1e9 / $1 }')"
    done
  done
}

# As for SoftHSM2: the 1-goroutine runs and the bare go-tpm benchmark take turns.
tpmbench() {
  local i k uri
  : >"$work/go-tpm.txt"
  for ((i = 0; i < 3; i++)); do
    for k in seal rsa ecc; do
      case $k in seal) uri=$TPM_SEAL ;; rsa) uri=$TPM_RSA ;; ecc) uri=$TPM_ECC ;; esac
      hb_run "tpm-$k.g1" "$i" --key "$uri" --messages 200 --concurrency 1
    done
    go test -run XXX -bench . -count 1 ./tpm/ | tee -a "$work/go-tpm.txt"
  done
  for k in seal rsa ecc; do
    case $k in seal) uri=$TPM_SEAL ;; rsa) uri=$TPM_RSA ;; ecc) uri=$TPM_ECC ;; esac
    hb_sum "tpm-$k.g1" 3
    hb "tpm-$k.g2" 3 --key "$uri" --messages 200 --concurrency 2
  done
  for k in seal:seal rsa:rsa-2048 ecc:ecc-p256; do
    put "tpmbare.${k%%:*}" "$(gobench "$work/go-tpm.txt" "BenchmarkUnwrap/${k#*:}" bare-µs | med)"
    put "tpmbare.${k%%:*}.hsmenv" "$(gobench "$work/go-tpm.txt" "BenchmarkUnwrap/${k#*:}" hsmenv-µs | med)"
    put "tpmbare.${k%%:*}.ratio" "$(gobench "$work/go-tpm.txt" "BenchmarkUnwrap/${k#*:}" ratio | med)"
  done
}

# ---------------------------------------------------------------- 4. ranged
ranged() {
  # One pass makes the 1 GiB messages (64 KiB and 4 KiB frames); written
  # back before the measured runs.
  go test -run XXX -bench 'RangeRead4KiB' -benchtime 1x ./envelope/ >/dev/null
  sync
  go test -run XXX -bench 'RangeRead4KiB' -benchmem -count 3 ./envelope/ | tee "$work/go-range.txt"
  local f v
  for f in 64 4; do
    for v in read open+read; do
      put "range.$f.$v.us" "$(gobench "$work/go-range.txt" "BenchmarkRangeRead4KiB/frame=${f}KiB/$v" ns/op | med | awk '{ printf "%.1f", $1 / 1e3 }')"
      put "range.$f.$v.frames" "$(gobench "$work/go-range.txt" "BenchmarkRangeRead4KiB/frame=${f}KiB/$v" frames/op | med)"
      put "range.$f.$v.max" "$(gobench "$work/go-range.txt" "BenchmarkRangeRead4KiB/frame=${f}KiB/$v" max-frames/op | sort -g | tail -1)"
      put "range.$f.$v.bytes" "$(gobench "$work/go-range.txt" "BenchmarkRangeRead4KiB/frame=${f}KiB/$v" B/op | med)"
    done
  done
  rm -rf "$TMPDIR/hsmenv-bench"
}

# ---------------------------------------------------------------- 5. frame size
framesize() {
  go test -run XXX -bench 'FrameSize' -benchtime 1x ./envelope/ >/dev/null
  sync
  go test -run XXX -bench 'FrameSize' -count 3 ./envelope/ | tee "$work/go-frame.txt"
  local f op
  for f in 4 16 64 256 1024; do
    for op in encrypt decrypt; do
      put "frame.$f.$op" "$(gobench "$work/go-frame.txt" "BenchmarkFrameSize/$op/${f}KiB" MB/s | med)"
    done
    put "frame.$f.size" "$(stat -c %s "$TMPDIR/hsmenv-bench/sealed-67108864-$((f * 1024))")"
  done
  rm -rf "$TMPDIR/hsmenv-bench"
}

# CPU accounting: what the whole machine spent against what this run's
# processes spent (bash's times: waited children), to tell other load apart.
cpu_stat() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat; }
own_cpu() { awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } print s }' "$1"; }
started=$(date +%s)
read -r busy0 steal0 < <(cpu_stat)
times >"$work/times0"
section ceiling ceiling
section bulk bulk
section zero-copy zerocopy
section js-esdk jsesdk
section peak-rss peakrss
rm -f "$work/plain1g" "$work/c0478"
section host-work hostwork
section softhsm softhsm
section tpm tpmbench
kill "$swtpm_pid" 2>/dev/null || true
wait "$swtpm_pid" 2>/dev/null || true
swtpm_pid=""
section ranged ranged
section frame-size framesize
put load.end "$(load)"
put elapsed "$(($(date +%s) - started))"
read -r busy1 steal1 < <(cpu_stat)
times >"$work/times1"
hz=$(getconf CLK_TCK)
put cpu.machine "$(awk -v a="$busy0" -v b="$busy1" -v hz="$hz" 'BEGIN { printf "%.0f", (b - a) / hz }')"
put cpu.steal "$(awk -v a="$steal0" -v b="$steal1" -v hz="$hz" 'BEGIN { printf "%.1f", (b - a) / hz }')"
put cpu.own "$(awk -v a="$(own_cpu "$work/times0")" -v b="$(own_cpu "$work/times1")" 'BEGIN { printf "%.0f", b - a }')"

# ---------------------------------------------------------------- report
# v KEY [FORMAT]: a result, formatted, or n/a.
v() {
  local x
  x=$(get "$1")
  if [ -z "$x" ]; then echo "n/a"; else awk -v x="$x" -v f="${2:-%s}" 'BEGIN { printf f, x }'; fi
}
# calc 'EXPR' KEY...: EXPR over a, b, c (the results named), or empty if any is missing.
calc() {
  local expr=$1 a b c
  shift
  a=$(get "$1"); b=$(get "${2:-$1}"); c=$(get "${3:-$1}")
  [ -n "$a" ] && [ -n "$b" ] && [ -n "$c" ] || return 0
  awk -v a="$a" -v b="$b" -v c="$c" "BEGIN { x = $expr; print x }"
}
# mbps KEY: MB/s (10^6 bytes) of 1 GiB in the seconds stored under KEY.
mbps() { calc "$GiB / a / 1e6" "$1"; }
for k in enc.0478 dec.0478 enc.0578 dec.0578 enc.0478p11 dec.0478p11 enc.age dec.age enc.js dec.js; do
  x=$(mbps "$k"); [ -z "$x" ] || put "mbps.$k" "$x"
done
x=$(calc "2 * a" gcm.single); [ -z "$x" ] || put gcm.two "$x"
fmt() { [ -z "$2" ] && echo "n/a" || awk -v x="$2" -v f="$1" 'BEGIN { printf f, x }'; }
# other_load: CPU time of other processes, when it stands out of the error
# of the two accountings (a few percent).
other_load() {
  local d
  d=$(calc "a - b" cpu.machine cpu.own)
  if [ -z "$d" ]; then
    echo "other processes' share unknown"
  elif awk -v d="$d" -v m="$(get cpu.machine)" 'BEGIN { exit !(d > 0.05 * m) }'; then
    echo "about $(fmt %.0f "$d") CPU-seconds went to other processes"
  else
    echo "no load from other processes stands out (the two agree within $(fmt %.0f "$(awk -v d="$d" 'BEGIN { print (d < 0 ? -d : d) }')") CPU-seconds, the accountings' error)"
  fi
}
gor() { if [ "$1" = 1 ]; then echo "1 goroutine"; else echo "$1 goroutines"; fi; }
maxload=$(awk -F'\t' '$1 ~ /^load\./ { split($2, l, " "); if (l[1] > m) m = l[1] } END { print m }' "$results")

passes=0 misses=0 unmeasured=0
targets=()
# target DESCRIPTION MEASURED-TEXT VALUE OP THRESHOLD
target() {
  local desc=$1 text=$2 val=$3 op=$4 thr=$5 ok res
  if [ -z "$val" ]; then
    res="NOT MEASURED"; unmeasured=$((unmeasured + 1))
  else
    ok=$(awk -v v="$val" -v t="$thr" -v op="$op" 'BEGIN { print ((op == ">=" && v >= t) || (op == "<=" && v <= t) || (op == ">" && v > t) || (op == "<" && v < t)) ? 1 : 0 }')
    if [ "$ok" = 1 ]; then res="PASS"; passes=$((passes + 1)); else res="**MISS**"; misses=$((misses + 1)); fi
  fi
  targets+=("| $desc | $text | $res |")
}

r=$(calc "a / b" mbps.enc.0478 gcm.two); target "bulk 0478 encrypt >= 0.85x the 2-core ceiling (2x single-core)" "$(fmt %.2fx "$r") ($(v mbps.enc.0478 %.0f) vs $(v gcm.two %.0f) MB/s)" "$r" ">=" 0.85
r=$(calc "a / b" mbps.dec.0478 gcm.two); target "bulk 0478 decrypt >= 0.85x the 2-core ceiling (2x single-core)" "$(fmt %.2fx "$r") ($(v mbps.dec.0478 %.0f) vs $(v gcm.two %.0f) MB/s)" "$r" ">=" 0.85
r=$(calc "a / b" mbps.enc.0478 zc.seal); target "bulk 0478 encrypt >= 0.9x the zero-copy ceiling (mmap + AES-256-GCM, all cores)" "$(fmt %.2fx "$r") ($(v mbps.enc.0478 %.0f) vs $(v zc.seal %.0f) MB/s)" "$r" ">=" 0.9
r=$(calc "a / b" mbps.dec.0478 zc.open); target "bulk 0478 decrypt >= 0.9x the zero-copy ceiling (mmap + AES-256-GCM, all cores)" "$(fmt %.2fx "$r") ($(v mbps.dec.0478 %.0f) vs $(v zc.open %.0f) MB/s)" "$r" ">=" 0.9
r=$(calc "a / b" mbps.enc.0478 mbps.enc.js); target "bulk 0478 encrypt >= 50x the JS ESDK" "$(fmt %.1fx "$r") ($(v mbps.enc.0478 %.0f) vs $(v mbps.enc.js %.0f) MB/s)" "$r" ">=" 50
r=$(calc "a / b" mbps.dec.0478 mbps.dec.js); target "bulk 0478 decrypt >= 50x the JS ESDK" "$(fmt %.1fx "$r") ($(v mbps.dec.0478 %.0f) vs $(v mbps.dec.js %.0f) MB/s)" "$r" ">=" 50
r=$(calc "a / b" mbps.enc.0478 mbps.enc.age); target "bulk 0478 encrypt faster than age" "$(fmt %.2fx "$r") ($(v mbps.enc.0478 %.0f) vs $(v mbps.enc.age %.0f) MB/s)" "$r" ">" 1
r=$(calc "a / b" mbps.dec.0478 mbps.dec.age); target "bulk 0478 decrypt faster than age" "$(fmt %.2fx "$r") ($(v mbps.dec.0478 %.0f) vs $(v mbps.dec.age %.0f) MB/s)" "$r" ">" 1
for k in enc.64m:"encrypt 64 MiB" dec.64m:"decrypt 64 MiB" enc.1g:"encrypt 1 GiB" dec.1g:"decrypt 1 GiB" enc.1g0578:"encrypt 1 GiB, suite 0578" dec.1g0578:"decrypt 1 GiB, suite 0578" enc.1g16m:"encrypt 1 GiB, 16 MiB frames, GOMAXPROCS=16" dec.1g16m:"decrypt 1 GiB, 16 MiB frames, GOMAXPROCS=16" enc.4g:"encrypt 4 GiB (sparse)" dec.4g:"decrypt 4 GiB"; do
  r=$(calc "a / 1024" "rss.${k%%:*}"); target "peak RSS <= 64 MiB: ${k#*:}" "$(fmt "%.1f MiB" "$r")" "$r" "<=" 64
done
for g in 1 2; do
  r=$(calc "a / b" "hb.p11.g$g.enc" "bare.bare-encrypt.g$g"); target "1 KiB SoftHSM2 uncached encrypt, $(gor $g) >= 0.8x bare C_Encrypt" "$(fmt %.2fx "$r") ($(v "hb.p11.g$g.enc" %.0f) vs $(v "bare.bare-encrypt.g$g" %.0f) /s)" "$r" ">=" 0.8
  r=$(calc "a / b" "hb.p11.g$g.dec" "bare.bare-decrypt.g$g"); target "1 KiB SoftHSM2 uncached decrypt, $(gor $g) >= 0.8x bare C_Decrypt" "$(fmt %.2fx "$r") ($(v "hb.p11.g$g.dec" %.0f) vs $(v "bare.bare-decrypt.g$g" %.0f) /s)" "$r" ">=" 0.8
done
for g in 1 2; do
  for op in enc:encrypt dec:decrypt; do
    r=$(get "hb.p11c.g$g.${op%%:*}"); target "1 KiB SoftHSM2 cached ${op#*:}, $(gor $g) >= 200,000 msg/s" "$(fmt "%.0f msg/s" "$r")" "$r" ">=" 200000
  done
done
for op in encrypt decrypt; do
  r=$(calc "1e9 / a" "small.cached/$op"); target "1 KiB cached $op, library, one goroutine >= 200,000 msg/s" "$(fmt "%.0f msg/s" "$r")" "$r" ">=" 200000
  r=$(get "small.uncached-instant-kek/$op"); target "host work per uncached 1 KiB $op (a KEK that returns at once) <= 5 µs" "$(fmt "%.1f µs" "$(calc "a / 1000" "small.uncached-instant-kek/$op")")" "$r" "<=" 5000
done
for k in seal:"tpm:seal" rsa:"key file rsa-2048" ecc:"key file ecc-p256"; do
  r=$(calc "a / b" "hb.tpm-${k%%:*}.g1.dec_p50" "tpmbare.${k%%:*}"); target "TPM unwrap <= 1.2x bare go-tpm: ${k#*:}, end to end (hsmenv bench decrypt p50 / bare median)" "$(fmt %.2fx "$r") ($(v "hb.tpm-${k%%:*}.g1.dec_p50" %.0f) vs $(v "tpmbare.${k%%:*}" %.0f) µs)" "$r" "<=" 1.2
  r=$(get "tpmbare.${k%%:*}.ratio"); target "TPM unwrap <= 1.2x bare go-tpm: ${k#*:}, KEK.Unwrap alternating with the bare sequence on one connection" "$(fmt %.3fx "$r") ($(v "tpmbare.${k%%:*}.hsmenv" %.0f) vs $(v "tpmbare.${k%%:*}" %.0f) µs)" "$r" "<=" 1.2
done
for f in 64 4; do
  r=$(get "range.$f.read.max"); target "ranged: at most two frames per 4 KiB request, $f KiB frames" "$(fmt "%.0f max" "$r") ($(v "range.$f.read.frames" %.3f) average)" "$r" "<=" 2
done

{
  cat <<EOF
# Benchmarks

Generated by \`make bench\` ([scripts/bench.sh](../scripts/bench.sh)) on $(v date): the
whole file is rewritten by every run, do not edit it by hand. Every figure below was measured
in that one run, on the machine described here, in $(v elapsed) s.

## Machine

| | |
| --- | --- |
| CPU | $(v cpu) (AES-NI: $(v aesni)) |
| cores (\`nproc\`) | $(v nproc) |
| memory | $(v mem) |
| kernel | $(v kernel) |
| Go | $(v go) |
| hsmenv | commit $(v commit) |
| date | $(v date) |
| load average (1, 5, 15 min) | at start $(v load.start); at end $(v load.end); highest 1-min figure at a section's start $maxload |
| peers | age $(v age); Node $(v node), @aws-crypto/client-node $(v esdk); SoftHSM2 $(v softhsm); swtpm $(v swtpm) |
| timing | $(v timer) |

Other processes may share the machine. During the run the machine spent $(v cpu.machine) CPU-seconds
(user, system and interrupts, all cores; /proc/stat) and this run's own processes $(v cpu.own)
(their rusage), in $(v elapsed) s of wall time on $(v nproc) cores:
$(other_load).
The hypervisor took $(v cpu.steal) CPU-seconds (steal). The load average at the start of each
section is given with it; it counts this run's own previous section too.

## Targets

$passes PASS, $misses MISS$([ "$unmeasured" -eq 0 ] || echo ", $unmeasured NOT MEASURED"). Each line is computed from the figures below. Runs on this
shared 2-core virtual machine vary (see the run times and the runs' ranges below): a line close to
its threshold can change from one run to the next.

| target | measured | result |
| --- | --- | --- |
EOF
  printf '%s\n' "${targets[@]}"
  cat <<EOF

## 1. Bulk throughput

A 1 GiB file of random bytes, read once before timing so that it is page-cached; output to
\`/dev/null\`. hsmenv is the CLI built by this run (\`hsmenv encrypt|decrypt -q -o /dev/null\`);
the figures are medians of the runs shown, after one warm-up run (all run times in seconds in the
last column). MB/s are 10^6 bytes per second of plaintext.

Load average at the start: $(v load.bulk) (ceiling: $(v load.ceiling); zero-copy ceiling: $(v load.zero-copy); JS ESDK: $(v load.js-esdk)).

| what | encrypt MB/s | decrypt MB/s | runs | run times (s), encrypt / decrypt |
| --- | ---: | ---: | ---: | --- |
| hsmenv, suite 0478, raw AES KEK | $(v mbps.enc.0478 %.0f) | $(v mbps.dec.0478 %.0f) | $(v enc.0478.runs) | $(v enc.0478.times) / $(v dec.0478.times) |
| hsmenv, suite 0478, SoftHSM2 AES-256 KEK | $(v mbps.enc.0478p11 %.0f) | $(v mbps.dec.0478p11 %.0f) | $(v enc.0478p11.runs) | $(v enc.0478p11.times) / $(v dec.0478p11.times) |
| hsmenv, suite 0578 (ECDSA P-384 signed), raw AES KEK | $(v mbps.enc.0578 %.0f) | $(v mbps.dec.0578 %.0f) | $(v enc.0578.runs) | $(v enc.0578.times) / $(v dec.0578.times) |
| age $(v age), X25519 recipient | $(v mbps.enc.age %.0f) | $(v mbps.dec.age %.0f) | $(v enc.age.runs) | $(v enc.age.times) / $(v dec.age.times) |
| JS ESDK $(v esdk) (Node $(v node)), suite 0478, 64 KiB frames, streaming | $(v mbps.enc.js %.0f) | $(v mbps.dec.js %.0f) | $(v js.runs) | $(v enc.js.times) / $(v dec.js.times) |

The AES-GCM ceiling, measured in the same run (\`go test -bench 'AESGCM(SingleCore|AllCores)'
-count 5 ./envelope/\`, medians): AES-256-GCM sealing 64 KiB blocks in a loop.

| ceiling | MB/s |
| --- | ---: |
| one core (BenchmarkAESGCMSingleCore) | $(v gcm.single %.0f) |
| all $(v nproc) cores at once (BenchmarkAESGCMAllCores) | $(v gcm.all %.0f) |
| 2 x single core | $(v gcm.two %.0f) |
| zero-copy ceiling (mmap + AES-256-GCM, all cores): seal | $(v zc.seal %.0f) |
| zero-copy ceiling (mmap + AES-256-GCM, all cores): open | $(v zc.open %.0f) |

The zero-copy ceiling (\`ceiling -runs $(v zc.runs) FILE\`, [internal/ceiling](../internal/ceiling/main.go),
medians of the runs: seal $(v zc.seal.all), open $(v zc.open.all) MB/s) maps the page-cached
1 GiB file whole (mmap, read-only, shared) and seals it with AES-256-GCM in 64 KiB frames on
$(v nproc) workers (GOMAXPROCS), 256 KiB per grab, each into a buffer of its own that is thrown
away; open is the same over a sealed copy laid out as frames (sequence number, IV, ciphertext,
tag). Nothing is copied out of the page cache; its clock covers the mapping, the page faults and
the unmapping, but not a process start, which the hsmenv figures include.

| ratio (suite 0478, raw AES KEK) | encrypt | decrypt |
| --- | ---: | ---: |
| hsmenv / all-cores ceiling | $(fmt %.2f "$(calc "a / b" mbps.enc.0478 gcm.all)") | $(fmt %.2f "$(calc "a / b" mbps.dec.0478 gcm.all)") |
| hsmenv / 2 x single-core ceiling | $(fmt %.2f "$(calc "a / b" mbps.enc.0478 gcm.two)") | $(fmt %.2f "$(calc "a / b" mbps.dec.0478 gcm.two)") |
| hsmenv / zero-copy ceiling | $(fmt %.2f "$(calc "a / b" mbps.enc.0478 zc.seal)") | $(fmt %.2f "$(calc "a / b" mbps.dec.0478 zc.open)") |
| hsmenv / JS ESDK | $(fmt %.1f "$(calc "a / b" mbps.enc.0478 mbps.enc.js)") | $(fmt %.1f "$(calc "a / b" mbps.dec.0478 mbps.dec.js)") |
| hsmenv / age | $(fmt %.2f "$(calc "a / b" mbps.enc.0478 mbps.enc.age)") | $(fmt %.2f "$(calc "a / b" mbps.dec.0478 mbps.dec.age)") |
| hsmenv SoftHSM2 KEK / raw AES KEK | $(fmt %.2f "$(calc "a / b" mbps.enc.0478p11 mbps.enc.0478)") | $(fmt %.2f "$(calc "a / b" mbps.dec.0478p11 mbps.dec.0478)") |

- The 0478 message decrypted here carries two EDKs (raw AES and SoftHSM2), so that both decrypt
  rows read the same file, each opening it with its own key.
- The JS ESDK row has no warm-up run and includes Node's start-up; it runs
  \`interop/esdk.js\` with \`"stream": true\`, whose driver writes to a temporary file
  renamed into place (it cannot write to \`/dev/null\`): a page-cached file, removed right
  after. Its last decrypted output was compared with the input.
- Suite 0578 also hashes the whole message (SHA-384) for its ECDSA P-384 signature: one serial pass.

## 2. Peak memory

Peak resident set size of the \`hsmenv\` process (ru_maxrss of the child, $([ -x /usr/bin/time ] && echo '`/usr/bin/time -f %M`' || echo 'python3 resource.getrusage')),
one run each, output to \`/dev/null\`, suite 0478 unless said. The 4 GiB input is a sparse file
(read once before, as the others); its message was written to a page-cached file for the
decrypt run. Load average at the start: $(v load.peak-rss).

| input | encrypt peak RSS (MiB) | decrypt peak RSS (MiB) | encrypt / decrypt time (s) |
| --- | ---: | ---: | --- |
EOF
  for k in 64m:"64 MiB" 1g:"1 GiB" 1g0578:"1 GiB, suite 0578" 1g16m:"1 GiB, 16 MiB frames, GOMAXPROCS=16" 4g:"4 GiB (sparse)"; do
    echo "| ${k#*:} | $(fmt %.1f "$(calc "a / 1024" "rss.enc.${k%%:*}")") | $(fmt %.1f "$(calc "a / 1024" "rss.dec.${k%%:*}")") | $(v "rss.enc.${k%%:*}.secs") / $(v "rss.dec.${k%%:*}.secs") |"
  done
  cat <<EOF

## 3. Small messages (1 KiB)

\`hsmenv bench --size 1KiB\`: each message is encrypted (fresh data key wrapped by the KEK), then
each is decrypted (data key unwrapped) and compared; messages per second over all goroutines,
median of $(v hb.p11.g1.reps) runs; p50 is the median latency of one message. The bare rates are
\`go test -bench SoftHSM -benchtime 20000x ./hsm/\`, 5 times (a bare miekg/pkcs11
C_EncryptInit+C_Encrypt / C_DecryptInit+C_Decrypt loop on a key of a token of its own, medians,
converted to operations per second) and \`go test -bench . ./tpm/\`, 3 times (the bare go-tpm
command sequence of one unwrap on a swtpm of its own: TPM2_Load, TPM2_Unseal / RSA_Decrypt /
ECDH_ZGen with a salted HMAC session, FlushContext; median latency). The uncached SoftHSM2 runs
(1 and 2 goroutines) and the 1-goroutine TPM runs take turns with their bare benchmark, so that
both see the same conditions.

### SoftHSM2 $(v softhsm), AES-256 KEK (AES-GCM), load average $(v load.softhsm)

| mode | goroutines | messages | encrypt msg/s (runs' range) | decrypt msg/s (runs' range) | encrypt p50 µs | decrypt p50 µs | bare C_Encrypt /s | bare C_Decrypt /s | encrypt / bare | decrypt / bare |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
EOF
  for g in 1 2; do
    echo "| uncached | $g | $(v hb.p11.g$g.messages) | $(v hb.p11.g$g.enc %.0f) ($(v hb.p11.g$g.enc.range)) | $(v hb.p11.g$g.dec %.0f) ($(v hb.p11.g$g.dec.range)) | $(v hb.p11.g$g.enc_p50 %.1f) | $(v hb.p11.g$g.dec_p50 %.1f) | $(v bare.bare-encrypt.g$g) | $(v bare.bare-decrypt.g$g) | $(fmt %.2f "$(calc "a / b" hb.p11.g$g.enc bare.bare-encrypt.g$g)") | $(fmt %.2f "$(calc "a / b" hb.p11.g$g.dec bare.bare-decrypt.g$g)") |"
  done
  for g in 1 2; do
    echo "| cached (max-age=5m, max-messages=100000; $(v hb.p11c.g$g.calls) device calls) | $g | $(v hb.p11c.g$g.messages) | $(v hb.p11c.g$g.enc %.0f) ($(v hb.p11c.g$g.enc.range)) | $(v hb.p11c.g$g.dec %.0f) ($(v hb.p11c.g$g.dec.range)) | $(v hb.p11c.g$g.enc_p50 %.1f) | $(v hb.p11c.g$g.dec_p50 %.1f) | | | | |"
  done
  cat <<EOF

The same Go benchmark also times hsmenv's KEK alone (\`KEK.Wrap\` / \`KEK.Unwrap\`, no message):
$(v bare.hsmenv-wrap.g1) / $(v bare.hsmenv-unwrap.g1) per second on 1 goroutine, $(v bare.hsmenv-wrap.g2) / $(v bare.hsmenv-unwrap.g2) on 2.
What a message costs beyond the bare token operation, on 1 goroutine (1/uncached - 1/bare):
encrypt $(fmt %.1f "$(calc "1e6 / a - 1e6 / b" hb.p11.g1.enc bare.bare-encrypt.g1)") µs, decrypt $(fmt %.1f "$(calc "1e6 / a - 1e6 / b" hb.p11.g1.dec bare.bare-decrypt.g1)") µs; a cached message's p50 (no token
operation at all): encrypt $(v hb.p11c.g1.enc_p50 %.1f) µs, decrypt $(v hb.p11c.g1.dec_p50 %.1f) µs. Runs of the same
configuration can differ a lot on this machine (the runs' range); a rate far below 1/p50 means
some messages stalled.

### Host work per message (library, one goroutine), load average $(v load.host-work)

\`go test -bench 'SmallMessage|DeriveKeys' -benchtime 2s -count 5 ./envelope/\`, medians (all runs in
ns in the last column): 1 KiB messages through \`envelope.Encrypt\`/\`Decrypt\` on one goroutine, with a
caching keyring (one KEK call for all of them) and uncached through a KEK that returns at once
(what hsmenv itself costs per message: data key, key schedule, header, frame, parsing).

| case | encrypt µs | encrypt msg/s | decrypt µs | decrypt msg/s | runs (ns), encrypt / decrypt |
| --- | ---: | ---: | ---: | ---: | --- |
| cached | $(fmt %.1f "$(calc "a / 1000" small.cached/encrypt)") | $(fmt %.0f "$(calc "1e9 / a" small.cached/encrypt)") | $(fmt %.1f "$(calc "a / 1000" small.cached/decrypt)") | $(fmt %.0f "$(calc "1e9 / a" small.cached/decrypt)") | $(v small.cached/encrypt.all) / $(v small.cached/decrypt.all) |
| uncached, instant KEK | $(fmt %.1f "$(calc "a / 1000" small.uncached-instant-kek/encrypt)") | $(fmt %.0f "$(calc "1e9 / a" small.uncached-instant-kek/encrypt)") | $(fmt %.1f "$(calc "a / 1000" small.uncached-instant-kek/decrypt)") | $(fmt %.0f "$(calc "1e9 / a" small.uncached-instant-kek/decrypt)") | $(v small.uncached-instant-kek/encrypt.all) / $(v small.uncached-instant-kek/decrypt.all) |

The key schedule alone (HKDF-SHA512: extract, then the content and commit keys; the format
requires it per message, cached or not) takes $(fmt %.1f "$(calc "a / 1000" small.derive)") µs of that.

### TPM 2.0 on swtpm $(v swtpm) (loopback TCP), uncached, load average $(v load.tpm)

| KEK | goroutines | messages | encrypt msg/s (runs' range) | decrypt msg/s (runs' range) | decrypt p50 µs | decrypt p99 µs | bare unwrap µs (go-tpm) | bare unwraps/s | decrypt p50 / bare |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
EOF
  for k in seal:"tpm:seal" rsa:"key file, rsa-2048" ecc:"key file, ecc-p256"; do
    n=${k%%:*}
    for g in 1 2; do
      echo "| ${k#*:} | $g | $(v hb.tpm-$n.g$g.messages) | $(v hb.tpm-$n.g$g.enc %.0f) ($(v hb.tpm-$n.g$g.enc.range)) | $(v hb.tpm-$n.g$g.dec %.0f) ($(v hb.tpm-$n.g$g.dec.range)) | $(v hb.tpm-$n.g$g.dec_p50 %.0f) | $(v hb.tpm-$n.g$g.dec_p99 %.0f) | $(v tpmbare.$n %.0f) | $(fmt %.0f "$(calc "1e6 / a" tpmbare.$n)") | $(fmt %.2f "$(calc "a / b" hb.tpm-$n.g$g.dec_p50 tpmbare.$n)") |"
    done
  done
  cat <<EOF

In the Go benchmark itself, hsmenv's \`KEK.Unwrap\` against the bare sequence on the same
connection, alternately (median ratio): seal $(v tpmbare.seal.ratio %.3f), rsa-2048 $(v tpmbare.rsa.ratio %.3f),
ecc-p256 $(v tpmbare.ecc.ratio %.3f). Encrypt with a key file wraps in software with the TPM
key's public part (no TPM command per message); \`tpm:seal\` runs TPM2_Create for every data
key. swtpm serves one command at a time, so 2 goroutines cannot
double its rate, and their p50 includes waiting for the other goroutine's command: the target
line uses 1 goroutine, compare rates (msg/s against bare unwraps/s) for 2.

## 4. Ranged decrypt

\`go test -bench RangeRead4KiB -benchmem -count 3 ./envelope/\` ([envelope/range_bench_test.go](../envelope/range_bench_test.go)):
4 KiB at random offsets (not aligned) of a 1 GiB message in a page-cached file, raw AES KEK,
medians. "read": one \`RangeReader\` opened beforehand serves every request, as a server would;
"open+read": each request opens the message first (header, data key unwrap, the final frame that
authenticates the plaintext size) as \`hsmenv decrypt --range\` does. Frames are counted by
\`RangeReader.FramesRead\`. Load average at the start: $(v load.ranged).

| frames | per request | µs / request | frames / request (average) | frames / request (most) | bytes allocated / request |
| --- | --- | ---: | ---: | ---: | ---: |
EOF
  for f in 64 4; do
    for m in read open+read; do
      echo "| $f KiB | $m | $(v range.$f.$m.us) | $(v range.$f.$m.frames %.3f) | $(v range.$f.$m.max %.0f) | $(v range.$f.$m.bytes %.0f) |"
    done
  done
  cat <<EOF

## 5. Frame size

\`go test -bench FrameSize -count 3 ./envelope/\` (medians): encrypt and decrypt of a 64 MiB
page-cached file, raw AES KEK, on all cores, for each frame size; the message size shows the
per-frame cost (32 bytes of IV and tag). This is the measurement behind
\`DefaultFrameSize\` = 64 KiB. Load average at the start: $(v load.frame-size).

| frame size | encrypt MB/s | decrypt MB/s | message bytes for 64 MiB | overhead |
| ---: | ---: | ---: | ---: | ---: |
EOF
  for f in 4 16 64 256 1024; do
    echo "| $f KiB | $(v frame.$f.encrypt %.0f) | $(v frame.$f.decrypt %.0f) | $(v frame.$f.size) | $(fmt %.3f%% "$(calc "(a - 67108864) / 67108864 * 100" frame.$f.size)") |"
  done
  echo
  echo "## Failures"
  echo
  if ((${#failures[@]})); then
    echo "Sections that failed in this run (their figures read n/a):"
    echo
    for f in "${failures[@]}"; do echo "- $f"; done
  else
    echo "None: every section ran to the end."
  fi
  # The sections other scripts measured (the plugins, many files, TPM
  # fleets) are kept: everything from the marker line on.
  if [[ -f $out ]]; then
    sed -n '/^<!-- measured by other scripts: make bench keeps everything from this line on -->$/,$p' "$out" |
      { IFS= read -r first && { echo; printf '%s\n' "$first"; cat; }; } || true
  fi
} >"$work/benchmarks.md"
mkdir -p "$(dirname "$out")"
cp "$work/benchmarks.md" "$out"
say "wrote $out: $passes PASS, $misses MISS, $unmeasured not measured, ${#failures[@]} failed sections, $(v elapsed) s"
grep -E '^\| .* \| (PASS|\*\*MISS\*\*|NOT MEASURED) \|$' "$out" >&2 || true
((${#failures[@]} == 0))
