# Sourced by the bench scripts: start_swtpm starts a throw-away swtpm.

# start_swtpm STATEDIR LOG HSMENV starts a swtpm with its state in STATEDIR
# on a random free loopback port, and waits until HSMENV can use it (a
# tpm:seal keygen answers). It sets port and swtpm_pid (the caller's exit
# trap stops it), and returns 1 with LOG on stderr when ten tries fail.
start_swtpm() {
  local dir=$1 log=$2 hsmenv=$3 try wait p
  port="" swtpm_pid=""
  for try in 1 2 3 4 5 6 7 8 9 10; do
    p=$((20000 + RANDOM % 30000))
    swtpm socket --tpm2 --tpmstate dir="$dir" --server type=tcp,port=$p,bindaddr=127.0.0.1 \
      --ctrl type=tcp,port=$((p + 1)),bindaddr=127.0.0.1 --flags not-need-init,startup-clear >"$log" 2>&1 &
    swtpm_pid=$!
    for wait in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "$swtpm_pid" 2>/dev/null || break
      if "$hsmenv" keygen --key "tpm:seal?device=tcp://127.0.0.1:$p" >/dev/null 2>&1; then port=$p; return 0; fi
      sleep 0.2
    done
    kill "$swtpm_pid" 2>/dev/null || true
    wait "$swtpm_pid" 2>/dev/null || true
    swtpm_pid=""
  done
  echo "swtpm did not start: $(cat "$log")" >&2
  return 1
}
