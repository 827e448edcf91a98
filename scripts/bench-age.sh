#!/usr/bin/env bash
# The age plugin's cost (issue 12): age encrypt and decrypt of a 1 KiB and a
# 1 GiB file with each KEK kind age-plugin-hsmenv serves, beside age with a
# plain X25519 identity (age-keygen). Prints a Markdown table of the
# overhead per file in milliseconds (time with the KEK minus time with
# X25519, median over the runs), encrypt and decrypt apart.
#
# KEKs (throw-away, made as scripts/demo.sh does): a SoftHSM2 token (own
# softhsm2.conf, random PIN in a file, pin-source=file: in the URIs) holding
# AES-256, RSA-3072, EC P-256 and EC P-384 keys; a swtpm on a free loopback
# port with tpm:seal, an RSA-2048 and an ECC P-256 key file. Identities come
# from age-plugin-hsmenv --generate. P-256 keys are encrypted to their
# age1tag1 recipient by age 1.3.2 (natively: no plugin, no device) and to
# their age1hsmenv1 recipient by age 1.1.1 (through the plugin, no device).
#
# age: 1.3.2 built with go install into $BENCH_AGE_DIR/age-1.3.2 (kept
# between runs) and Debian's /usr/bin/age 1.1.1 (the 1 KiB file; the 1 GiB
# file too with BENCH_AGE_GIB_OLD=1).
#
# Timing: a loop of our own, not hyperfine, to pair runs: each run with a
# KEK comes right before or after (alternately) a run with X25519 on the
# same age binary and file, and the overhead is the median of these
# differences; the 1 KiB pairs of all KEKs take turns within each round.
# So another job on the machine, the page cache or the CPU frequency touch
# both sides of a difference alike. Wall time from $EPOCHREALTIME: no
# process is started to read the clock. Before its runs, each command runs
# once untimed: the encryption writes the ciphertext the decrypt runs read,
# and that ciphertext is checked to decrypt to the input. Timed runs write
# to /dev/null. The 1 GiB input and ciphertexts are synced and read once
# before the timed runs (page-cached): every 1 GiB run does the same
# payload work (one ChaCha20-Poly1305 pass over 1 GiB, on one core) and
# only the header (the recipient stanza) differs, so the 1 GiB overhead
# should match the 1 KiB one, within the noise the brackets show. A row
# times X25519 against itself the same way: the noise floor. A second
# table gives CPU time (user + system, from the times builtin) of the same
# runs, which other jobs on the machine disturb less.
#
# Knobs: BENCH_AGE_RUNS (1 KiB pairs per cell, default 20),
# BENCH_AGE_RUNS_GIB (1 GiB pairs per cell, default 3), BENCH_AGE_GIB=0
# (skip the 1 GiB file), BENCH_AGE_GIB_OLD=1 (also age 1.1.1 on the 1 GiB
# file), BENCH_AGE_DIR (default .state/bench-age: the age 1.3.2 build, and
# this run's temporary directory, removed on exit), BENCH_AGE_OUT (also
# write the table there).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
. scripts/lib/swtpm.sh
export PATH="$PATH:/usr/local/go/bin"
export LC_ALL=C
RUNS=${BENCH_AGE_RUNS:-20}
RUNS_GIB=${BENCH_AGE_RUNS_GIB:-3}
DO_GIB=${BENCH_AGE_GIB:-1}
GIB_OLD=${BENCH_AGE_GIB_OLD:-0}
base=${BENCH_AGE_DIR:-.state/bench-age}
GiB=1073741824

say() { printf '== %s\n' "$*" >&2; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

[ -n "${EPOCHREALTIME:-}" ] || { echo "bench-age: needs bash >= 5 (\$EPOCHREALTIME)" >&2; exit 1; }

# ---------------------------------------------------------------- tools
missing=()
for p in softhsm2 swtpm swtpm-tools age; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  say "installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
AGE11=/usr/bin/age
[ -x "$AGE11" ] || { echo "bench-age: $AGE11 missing (Debian package age)" >&2; exit 1; }

mkdir -p "$base"
base=$(cd "$base" && pwd)
AGE13DIR=$base/age-1.3.2
if [ "$("$AGE13DIR/age" --version 2>/dev/null)" != v1.3.2 ]; then
  say "building age 1.3.2 into $AGE13DIR"
  mkdir -p "$AGE13DIR"
  # Outside the module, with no -mod flag of the caller's.
  (cd "$base" && GOBIN=$AGE13DIR GOFLAGS= go install filippo.io/age/cmd/...@v1.3.2)
fi
AGE13=$AGE13DIR/age

# ---------------------------------------------------------------- work dir
work=$(mktemp -d "$base/run.XXXXXXXX")
swtpm_pid=""
cleanup() {
  if [ -n "$swtpm_pid" ]; then kill "$swtpm_pid" 2>/dev/null || true; wait "$swtpm_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [ "$DO_GIB" = 1 ]; then
  need=4 # the input and two ciphertexts at a time, and some room
  avail_kb=$(df -Pk "$work" | awk 'NR==2 {print $4}')
  if [ "$avail_kb" -lt $((need * 1024 * 1024)) ]; then
    echo "bench-age: $work has $((avail_kb / 1024 / 1024)) GiB free; the 1 GiB part needs about $need GiB (BENCH_AGE_GIB=0 skips it)" >&2
    exit 1
  fi
fi

say "building hsmenv and age-plugin-hsmenv"
mkdir -p "$work/plugin" "$work/bin"
go build -o "$work/bin/hsmenv" ./cmd/hsmenv
go build -o "$work/plugin/age-plugin-hsmenv" ./cmd/age-plugin-hsmenv
hsmenv=$work/bin/hsmenv
plugin=$work/plugin/age-plugin-hsmenv
# age finds the plugin on PATH; nothing from the caller's environment
# points hsmenv elsewhere.
export PATH="$work/plugin:$PATH"
while read -r v; do unset "$v"; done < <(env | sed -n 's/^\(HSMENV_[A-Za-z0-9_]*\|TPM2[A-Za-z0-9_]*\|AGEDEBUG\)=.*/\1/p')

# ---------------------------------------------------------------- keys
say "throw-away keys: X25519, SoftHSM2 token, swtpm"
"$AGE13DIR/age-keygen" -o "$work/x25519.key" 2>/dev/null
X25519_R=$("$AGE13DIR/age-keygen" -y "$work/x25519.key")

module=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
  [ -e "$m" ] && module=$m && break
done
[ -n "$module" ] || { echo "bench-age: libsofthsm2.so not found" >&2; exit 1; }
mkdir -p "$work/softhsm/tokens"
printf 'directories.tokendir = %s/softhsm/tokens\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' "$work" >"$work/softhsm/softhsm2.conf"
export SOFTHSM2_CONF=$work/softhsm/softhsm2.conf
(umask 077; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/softhsm/pin")
softhsm2-util --init-token --free --label hsmenv-bench-age --pin "$(cat "$work/softhsm/pin")" \
  --so-pin "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >/dev/null
p11() { printf 'pkcs11:token=hsmenv-bench-age;object=%s?module-path=%s&pin-source=file:%s' "$1" "$module" "$work/softhsm/pin"; }

mkdir -p "$work/swtpm"
start_swtpm "$work/swtpm" "$work/swtpm.log" "$hsmenv" || exit 1
DEV="device=tcp://127.0.0.1:$port"

# kinds: name, label in the table, keygen type, URI.
KINDS=(p11aes p11rsa p11p256 p11p384 tpmseal tpmrsa tpmecc)
declare -A LABEL URI TYPE REC REC_OLD
LABEL=([p11aes]="SoftHSM2 AES-256" [p11rsa]="SoftHSM2 RSA-3072" [p11p256]="SoftHSM2 EC P-256"
  [p11p384]="SoftHSM2 EC P-384" [tpmseal]="swtpm tpm:seal" [tpmrsa]="swtpm RSA-2048 key file"
  [tpmecc]="swtpm ECC P-256 key file")
TYPE=([p11aes]=aes-256 [p11rsa]=rsa-3072 [p11p256]=ec-p256 [p11p384]=ec-p384 [tpmseal]="" [tpmrsa]=rsa-2048 [tpmecc]=ec-p256)
URI=([p11aes]=$(p11 kek-aes) [p11rsa]=$(p11 kek-rsa) [p11p256]=$(p11 kek-p256) [p11p384]=$(p11 kek-p384)
  [tpmseal]="tpm:seal?$DEV" [tpmrsa]="tpm:key-file=$work/rsa.tpmkey?$DEV" [tpmecc]="tpm:key-file=$work/ecc.tpmkey?$DEV")
for k in "${KINDS[@]}"; do
  if [ -n "${TYPE[$k]}" ]; then "$hsmenv" keygen -q --type "${TYPE[$k]}" --key "${URI[$k]}" >/dev/null; fi
  "$plugin" --generate --key "${URI[$k]}" -o "$work/id.$k" 2>/dev/null
  REC[$k]=$(sed -n 's/^# recipient: //p' "$work/id.$k")
  # age 1.1.1 cannot encrypt to age1tag1: the P-256 keys' age1hsmenv1 recipient.
  REC_OLD[$k]=$(sed -n 's/^# recipient for age < 1.3 and sops: //p' "$work/id.$k")
  [ -n "${REC_OLD[$k]}" ] || REC_OLD[$k]=${REC[$k]}
  echo "  ${LABEL[$k]}: ${REC[$k]:0:24}... (age 1.1.1: ${REC_OLD[$k]:0:24}...)" >&2
done
cp "$work/x25519.key" "$work/id.x25519"
REC[x25519]=$X25519_R
REC_OLD[x25519]=$X25519_R
LABEL[x25519]="X25519 (age-keygen)"
LABEL[aa]="X25519 again"

# ---------------------------------------------------------------- timing
declare -A CMD
# add NAME CMD...: a command to time, kept as a quoted string.
add() { local n=$1; shift; CMD[$n]=$(printf '%q ' "$@"); }

# timed NAME: runs command NAME; sets WALL (wall time, µs, from
# $EPOCHREALTIME) and CPU (user + system time of the children this shell
# waited for, µs, from the times builtin: age, and the plugin age waited
# for; not swtpm's). No process is started to read either clock.
timed() {
  local t0 t1 c0 c1
  cpu_now; c0=$REPLY
  t0=$EPOCHREALTIME
  eval "${CMD[$1]}" >/dev/null
  t1=$EPOCHREALTIME
  cpu_now; c1=$REPLY
  WALL=$((${t1/./} - ${t0/./}))
  CPU=$((c1 - c0))
}
# cpu_now: REPLY = children user + system time so far, µs (ms resolution).
# No $( ): a subshell is a child too, and would count.
cpu_now() {
  local _ u s us
  times >"$work/times"
  { read -r _ _; read -r u s; } <"$work/times"
  tous "$u"; us=$REPLY
  tous "$s"; REPLY=$((us + REPLY))
}
# tous 1m2.345s: REPLY = that many µs.
tous() { local m=${1%%m*} x=${1#*m}; x=${x%s}; REPLY=$(((m * 60 + 10#${x%.*}) * 1000000 + 10#${x#*.} * 1000)); }

# pairs FILE RUNS BASE:NAME...: RUNS rounds; in each, for each pair, BASE
# and NAME run back to back (which one first alternates), so that the
# difference sees the conditions of that moment. Appends "NAME BASE_wall
# NAME_wall BASE_cpu NAME_cpu" lines (µs) to FILE.
pairs() {
  local file=$1 runs=$2 r i p b n bw nw bc nc
  shift 2
  local list=("$@")
  for ((r = 0; r < runs; r++)); do
    for ((i = 0; i < ${#list[@]}; i++)); do
      p=${list[i]}
      b=${p%%:*} n=${p#*:}
      if (((r + i) % 2)); then
        timed "$n"; nw=$WALL nc=$CPU
        timed "$b"; bw=$WALL bc=$CPU
      else
        timed "$b"; bw=$WALL bc=$CPU
        timed "$n"; nw=$WALL nc=$CPU
      fi
      echo "$n $bw $nw $bc $nc" >>"$file"
    done
    printf '.' >&2
  done
  echo >&2
}

# stats FILE NAME WHAT: "median q1 q3" in ms of NAME's runs, WHAT one of
# diff (NAME minus its BASE, pair by pair), base, abs (NAME), and cdiff,
# cbase, cabs (the same for CPU time). Quartiles by nearest rank (with 3
# runs: min and max).
stats() {
  awk -v n="$2" -v w="$3" '$1 == n {
      c = w ~ /^c/ ? 2 : 0; x = w; sub(/^c/, "", x)
      print (x == "diff" ? $(3 + c) - $(2 + c) : x == "base" ? $(2 + c) : $(3 + c)) / 1000 }' "$1" | sort -g |
    awk 'function nr(p, i) { i = int(p * NR + 0.999999); if (i < 1) i = 1; return a[i] }
      { a[NR] = $1 } END { if (NR == 0) exit 1
        m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        print m, nr(0.25), nr(0.75) }'
}

# check AGE IN CIPHERTEXT IDENTITY: the ciphertext decrypts to IN.
check() {
  "$1" -d -i "$4" "$3" | cmp -s - "$2" || { echo "bench-age: $3 does not decrypt to $2 with $4" >&2; exit 1; }
}

# prepare TAG AGE IN K: the encrypt and decrypt commands of kind K (or
# x25519) for AGE and input IN; the untimed warm-up writes the ciphertext
# $work/c.TAG.K the decrypt runs read, and checks it.
prepare() {
  local tag=$1 agebin=$2 in=$3 k=$4 rec
  if [ "$agebin" = "$AGE11" ]; then rec=${REC_OLD[$k]}; else rec=${REC[$k]}; fi
  "$agebin" -r "$rec" -o "$work/c.$tag.$k" "$in"
  check "$agebin" "$in" "$work/c.$tag.$k" "$work/id.$k"
  add "enc.$k" "$agebin" -r "$rec" -o /dev/null "$in"
  add "dec.$k" "$agebin" -d -i "$work/id.$k" -o /dev/null "$work/c.$tag.$k"
  if [ "$k" = x25519 ]; then # X25519 against itself: the noise floor
    CMD[enc.aa]=${CMD[enc.x25519]}
    CMD[dec.aa]=${CMD[dec.x25519]}
  fi
}

# report TAG: what a group measured, on standard error: medians in ms of
# wall time and CPU time, with the overhead (median, q1, q3).
report() {
  local f=$work/t.$1 k op
  for op in enc dec; do
    echo "  $1 X25519 $op: wall $(stats "$f" "$op.${KINDS[0]}" base | cut -d' ' -f1), cpu $(stats "$f" "$op.${KINDS[0]}" cbase | cut -d' ' -f1) (beside ${LABEL[${KINDS[0]}]})" >&2
    for k in aa "${KINDS[@]}"; do
      echo "  $1 ${LABEL[$k]} $op: wall $(stats "$f" "$op.$k" abs | cut -d' ' -f1) (+ $(stats "$f" "$op.$k" diff)), cpu $(stats "$f" "$op.$k" cabs | cut -d' ' -f1) (+ $(stats "$f" "$op.$k" cdiff))" >&2
    done
  done
}

# small TAG AGE: the 1 KiB file, every kind in each round.
small() {
  local tag=$1 agebin=$2 k list=() in=$work/plain.1k
  : >"$work/t.$tag"
  for k in x25519 "${KINDS[@]}"; do prepare "$tag" "$agebin" "$in" "$k"; done
  for k in aa "${KINDS[@]}"; do list+=("enc.x25519:enc.$k" "dec.x25519:dec.$k"); done
  # The age1hsmenv1 recipient of the P-256 keys with age 1.3.2 too (sops
  # takes that path): encrypt only.
  if [ "$agebin" = "$AGE13" ]; then
    for k in p11p256 tpmecc; do
      add "enc.$k.plugin" "$agebin" -r "${REC_OLD[$k]}" -o /dev/null "$in"
      list+=("enc.x25519:enc.$k.plugin")
    done
  fi
  # The plugin process alone, no device: age-plugin-hsmenv -y.
  add plugin-y "$plugin" -y "$work/id.p11aes"
  add true /bin/true
  list+=("true:plugin-y")
  say "$tag: ${#list[@]} pairs, $RUNS rounds (load average $(load))"
  pairs "$work/t.$tag" "$RUNS" "${list[@]}"
  report "$tag"
}

# big TAG AGE: the 1 GiB file, one kind after the other, so that only two
# ciphertexts exist at a time; each is synced and read once (page-cached)
# before its runs.
big() {
  local tag=$1 agebin=$2 k in=$work/plain.1g
  : >"$work/t.$tag"
  prepare "$tag" "$agebin" "$in" x25519
  for k in aa "${KINDS[@]}"; do
    [ "$k" = aa ] || prepare "$tag" "$agebin" "$in" "$k"
    sync
    cat "$in" "$work/c.$tag".* >/dev/null
    say "$tag ${LABEL[$k]}: $RUNS_GIB rounds (load average $(load))"
    pairs "$work/t.$tag" "$RUNS_GIB" "enc.x25519:enc.$k" "dec.x25519:dec.$k"
    [ "$k" = aa ] || rm -f "$work/c.$tag.$k"
  done
  rm -f "$work/c.$tag.x25519"
  report "$tag"
}

put_date=$(date -u '+%Y-%m-%d %H:%M UTC')
load_start=$(load)
if awk -v l="${load_start%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n) }'; then
  echo "bench-age: load average ${load_start%% *} on $(nproc) cores: other jobs compete, expect noisy figures (the brackets show how noisy)" >&2
fi
t_start=$SECONDS
head -c 1024 /dev/urandom >"$work/plain.1k"
small a13-1k "$AGE13"
small a11-1k "$AGE11"
if [ "$DO_GIB" = 1 ]; then
  say "writing a 1 GiB random file"
  head -c "$GiB" /dev/urandom >"$work/plain.1g"
  big a13-1g "$AGE13"
  if [ "$GIB_OLD" = 1 ]; then big a11-1g "$AGE11"; fi
fi
load_end=$(load)
elapsed=$((SECONDS - t_start))

# ---------------------------------------------------------------- table
# cell TAG NAME [c]: "+median (q1..q3)" of NAME's overhead in ms (with c:
# CPU time), or n/a.
cell() {
  local f=$work/t.$1 m q1 q3
  [ -s "$f" ] && grep -q "^$2 " "$f" || { echo "n/a"; return; }
  read -r m q1 q3 < <(stats "$f" "$2" "${3:-}diff")
  # Whole ms for 1 GiB and for CPU time (the times builtin counts ms).
  awk -v m="$m" -v a="$q1" -v b="$q3" -v big="$([[ $1 == *-1g || -n ${3:-} ]] && echo 1 || echo 0)" '
    function f(x) { return sprintf(big ? "%+.0f" : "%+.1f", x) }
    BEGIN { printf "%s (%s..%s)", f(m), f(a), f(b) }'
}
# base TAG OP [c]: the X25519 median (ms) of OP (enc or dec) over all its
# runs in TAG beside the KEKs (with c: CPU time).
base() {
  local f=$work/t.$1
  [ -s "$f" ] || { echo "n/a"; return; }
  awk -v op="$2" -v col="$([ "${3:-}" = c ] && echo 4 || echo 2)" 'index($1, op ".") == 1 && $1 !~ /[.]plugin$/ { print $col / 1000 }' "$f" | sort -g |
    awk -v big="$([[ $1 == *-1g || -n ${3:-} ]] && echo 1 || echo 0)" '{ a[NR] = $1 } END {
      m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf big ? "%.0f" : "%.1f", m }'
}
recipient() {
  case $1 in
    p11p256 | tpmecc) echo 'age1tag1 (1.1.1: age1hsmenv1)' ;;
    *) echo age1hsmenv1 ;;
  esac
}
cols=(a13-1k a11-1k)
hdr="| KEK | recipient | age 1.3.2 1 KiB encrypt | decrypt | age 1.1.1 1 KiB encrypt | decrypt |"
sep="|---|---|---:|---:|---:|---:|"
if [ "$DO_GIB" = 1 ]; then
  cols+=(a13-1g)
  hdr+=" age 1.3.2 1 GiB encrypt | decrypt |"
  sep+="---:|---:|"
  if [ "$GIB_OLD" = 1 ]; then
    cols+=(a11-1g)
    hdr+=" age 1.1.1 1 GiB encrypt | decrypt |"
    sep+="---:|---:|"
  fi
fi
# table [c]: the rows, wall time (with c: CPU time).
table() {
  local row k t
  echo "$hdr"
  echo "$sep"
  row="| X25519 (age-keygen), absolute | age1 |"
  for t in "${cols[@]}"; do row+=" $(base "$t" enc "${1:-}") | $(base "$t" dec "${1:-}") |"; done
  echo "$row"
  row="| X25519 again (A/A: the noise floor) | age1 |"
  for t in "${cols[@]}"; do row+=" $(cell "$t" enc.aa "${1:-}") | $(cell "$t" dec.aa "${1:-}") |"; done
  echo "$row"
  for k in "${KINDS[@]}"; do
    row="| ${LABEL[$k]} | $(recipient "$k") |"
    for t in "${cols[@]}"; do row+=" $(cell "$t" "enc.$k" "${1:-}") | $(cell "$t" "dec.$k" "${1:-}") |"; done
    echo "$row"
  done
}
{
  echo "### age-plugin-hsmenv: overhead per file over age with an X25519 identity (ms)"
  echo
  echo "Wall time. Each cell: the median over the runs of (time with the KEK) minus (time with X25519 run right before or after it, with the same age binary and file), in ms, and in brackets the quartiles of these differences (nearest rank; with 3 runs, min and max). The first row gives the X25519 times themselves."
  echo
  table
  echo
  echo "- age 1.3.2 encrypting 1 KiB to the age1hsmenv1 recipient of a P-256 key instead of its age1tag1 (through the plugin, on the host, no device; what sops does): SoftHSM2 EC P-256 $(cell a13-1k enc.p11p256.plugin) ms, swtpm ECC P-256 key file $(cell a13-1k enc.tpmecc.plugin) ms."
  echo "- The plugin process alone (age-plugin-hsmenv -y, no device): $(stats "$work/t.a13-1k" plugin-y abs | awk '{ printf "%.1f", $1 }') ms, beside $(stats "$work/t.a13-1k" plugin-y base | awk '{ printf "%.1f", $1 }') ms for /bin/true."
  echo
  echo "CPU time of the same runs (user + system of age and of the plugin, SoftHSM2 included as it runs inside the plugin; not swtpm's, a process of its own), same layout: less sensitive to other jobs on the machine than wall time."
  echo
  table c
  echo
  echo "- Runs: 1 KiB $RUNS per cell, 1 GiB $([ "$DO_GIB" = 1 ] && echo "$RUNS_GIB per cell" || echo "skipped"); after one untimed (checked) run of each command; timed runs write to /dev/null; the 1 GiB input and ciphertext page-cached; ${elapsed} s in all."
  echo "- Machine: $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores, $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo); $put_date; load average $load_start at the start, $load_end at the end."
  echo "- Software: age $("$AGE13" --version) (go install), age $("$AGE11" --version) (Debian), $(softhsm2-util --version 2>/dev/null | sed 's/^/SoftHSM2 /'), swtpm $(swtpm --version 2>/dev/null | head -1 | sed 's/.*version //; s/,.*//'), $(go version | awk '{ print $3 }'), hsmenv $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$([ -z "$(git status --porcelain 2>/dev/null)" ] || echo ' + uncommitted changes')."
} >"$work/table.md"
cat "$work/table.md"
if [ -n "${BENCH_AGE_OUT:-}" ]; then cp "$work/table.md" "$BENCH_AGE_OUT"; fi
