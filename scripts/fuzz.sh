#!/usr/bin/env bash
# `make fuzz`: run every fuzz target of the module, each for FUZZTIME.
#
# Targets are found, not listed: every `func FuzzXxx(f *testing.F)` in a
# _test.go file of the module. Each runs as
#
#   go test -run '^$' -fuzz '^FuzzXxx$' -fuzztime $FUZZTIME ./pkg/
#
# and gets one line: its executions, the inputs that grew coverage, and
# whether it found anything. A finding is written by `go test` to
# pkg/testdata/fuzz/FuzzXxx/<hash>, where it stays as a regression seed
# (commit it once fixed); the line names it. The exit status is 1 if any
# target failed (a finding, or a build or setup failure), and each target's
# full output is kept in FUZZ_LOGDIR.
#
# Knobs (environment, or make variables: make fuzz FUZZTIME=10m FUZZ_JOBS=2):
#   FUZZTIME       per target, a duration or Nx executions (default 30s)
#   FUZZ_JOBS      targets run at once (default 1)
#   FUZZ_PARALLEL  go test -parallel per target: fuzzing workers (default:
#                  GOMAXPROCS with one job, the CPUs shared out with more)
#   FUZZ_MINIMIZE  -fuzzminimizetime (default 1000x: code that sorts map keys
#                  has coverage that depends on map order, and a long
#                  minimization of every "new" input stalls fuzzing; use e.g.
#                  60s to shrink a finding further)
#   FUZZ_FILTER    extended regexp on "pkg FuzzXxx" selecting targets
#                  (e.g. 'hsm|keyuri', 'FuzzContext$'; default all)
#   FUZZ_LOGDIR    where the logs go (default a new temporary directory)
#   GO             the go command
#
#   scripts/fuzz.sh -l    lists the targets and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
FUZZ_JOBS=${FUZZ_JOBS:-1}
FUZZ_PARALLEL=${FUZZ_PARALLEL:-}
FUZZ_MINIMIZE=${FUZZ_MINIMIZE:-1000x}
FUZZ_FILTER=${FUZZ_FILTER:-}

# targets prints "pkg FuzzXxx" for every fuzz target, pkg as ./dir.
targets() {
	find . -name '*_test.go' -not -path './.git/*' -not -path '*/testdata/*' -not -path './vendor/*' -print0 |
		xargs -0 grep -HoE '^func Fuzz[A-Za-z0-9_]*\([A-Za-z_][A-Za-z0-9_]* \*testing\.F\)' |
		sed -E 's|^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*$|\1 \2|' |
		sort -u
}

mapfile -t all < <(targets)
selected=()
for t in "${all[@]}"; do
	if [[ -z $FUZZ_FILTER ]] || grep -qE -- "$FUZZ_FILTER" <<<"$t"; then
		selected+=("$t")
	fi
done
if [[ ${1:-} == -l ]]; then
	printf '%s\n' "${selected[@]}"
	exit 0
fi
if ((${#selected[@]} == 0)); then
	echo "fuzz: no fuzz target matches FUZZ_FILTER=$FUZZ_FILTER" >&2
	exit 1
fi
if ! [[ $FUZZ_JOBS =~ ^[1-9][0-9]*$ ]]; then
	echo "fuzz: FUZZ_JOBS=$FUZZ_JOBS is not a positive number" >&2
	exit 2
fi
if [[ -z $FUZZ_PARALLEL && $FUZZ_JOBS -gt 1 ]]; then
	cpus=$(nproc 2>/dev/null || echo 1)
	FUZZ_PARALLEL=$((cpus / FUZZ_JOBS > 0 ? cpus / FUZZ_JOBS : 1))
fi
FUZZ_LOGDIR=${FUZZ_LOGDIR:-$(mktemp -d "${TMPDIR:-/tmp}/hsmenv-fuzz.XXXXXX")}
mkdir -p "$FUZZ_LOGDIR"

echo "fuzz: ${#selected[@]} targets, $FUZZTIME each, $FUZZ_JOBS at a time${FUZZ_PARALLEL:+, -parallel $FUZZ_PARALLEL}; logs in $FUZZ_LOGDIR"

# run_one runs one target and writes its summary line to $log.result.
run_one() {
	local pkg=$1 name=$2
	local log
	log="$FUZZ_LOGDIR/$(tr / _ <<<"${pkg#./}")-$name.log"
	local args=(test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZ_MINIMIZE")
	if [[ -n $FUZZ_PARALLEL ]]; then
		args+=(-parallel "$FUZZ_PARALLEL")
	fi
	local start rc=0
	start=$(date +%s)
	"$GO" "${args[@]}" "$pkg/" >"$log" 2>&1 || rc=$?
	local secs=$(($(date +%s) - start))
	# The last progress line has the totals:
	#   fuzz: elapsed: 30s, execs: 462540 (15418/sec), new interesting: 17 (total: 64)
	local progress execs interesting
	progress=$(grep -E '^fuzz: elapsed: .*execs: [0-9]+' "$log" | tail -n 1 || true)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$progress")
	interesting=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$progress")
	local status found
	found=$(sed -nE 's/.*Failing input written to (testdata\/fuzz\/[^ ]+).*/\1/p' "$log" | head -n 1)
	if ((rc == 0)); then
		status=ok
		found="nothing found"
	elif [[ -n $found ]]; then
		status=FOUND
		found="found: ${pkg#./}/$found"
	else
		status=FAIL
		found="failed: $(grep -m1 -E -- '\.go:[0-9]+:|--- FAIL|panic:|^fuzz: ' "$log" || tail -n 1 "$log")"
	fi
	printf '%-6s %-32s execs %12s  new-interesting %5s  %4ss  %s\n' \
		"$status" "${pkg#./}.$name" "${execs:-0}" "${interesting:-0}" "$secs" "$found" >"$log.result"
	cat "$log.result"
}

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' INT TERM
running=0
for t in "${selected[@]}"; do
	read -r pkg name <<<"$t"
	if ((running >= FUZZ_JOBS)); then
		wait -n || true
		running=$((running - 1))
	fi
	run_one "$pkg" "$name" &
	pids+=("$!")
	running=$((running + 1))
done
wait || true

echo
echo "fuzz: summary (FUZZTIME=$FUZZTIME)"
failed=0
for t in "${selected[@]}"; do
	read -r pkg name <<<"$t"
	r="$FUZZ_LOGDIR/$(tr / _ <<<"${pkg#./}")-$name.log.result"
	if [[ -f $r ]]; then
		cat "$r"
		grep -q '^ok ' "$r" || failed=1
	else
		printf '%-6s %-32s did not report (see %s)\n' FAIL "${pkg#./}.$name" "$FUZZ_LOGDIR"
		failed=1
	fi
done
if ((failed)); then
	echo "fuzz: FAILED; logs in $FUZZ_LOGDIR" >&2
	exit 1
fi
