#!/usr/bin/env bash
# hsmenv kms-plugin against a real kube-apiserver and etcd, on loopback, with
# throw-away keys under .state/e2e-kubernetes (issue 13). Not run in CI.
#
# It builds kube-apiserver (k8s.io/kubernetes, $K8S_VERSION, with its
# staging modules replaced by their published v0.X.Y) and etcd
# (go.etcd.io/etcd/server/v3/etcdmain, $ETCD_VERSION) through the Go module
# proxy in scratch modules under the work dir (the first run: 10-25 minutes
# on 2 cores; later runs reuse the binaries in $work/bin), then checks, with
# curl through the REST API and etcd's v3 HTTP gateway only (no kubectl, no
# etcdctl), printing PASS/FAIL and the time of each step:
#   a Secret written and read back; etcd holds k8s:enc:kms:v2:hsmenv: and the
#   plugin's key_id, never the plaintext; 20 more writes cost no Encrypt;
#   'hsmenv kms-plugin recover' and 'hsmenv decrypt' read the etcd value
#   without the cluster; rotation (new key first, old one under
#   --decrypt-key): old Secrets still read, new ones carry the new key_id once
#   the apiserver's Status poll sees it (the delay is printed); the plugin
#   killed (stale socket) and started again; the apiserver restarted cold
#   (every seed decrypted again, the old key's through --decrypt-key);
#   existing Secrets re-encrypted (GET + PUT, as kubectl replace), then the
#   old key dropped; and, unless E2E_TPM=0, a rotation to a key on a
#   software TPM (swtpm); the plugin's exit status after SIGTERM.
#
#   scripts/e2e-kubernetes.sh               # build if needed, run every step
#   scripts/e2e-kubernetes.sh --build-only  # only build (or find) the binaries
# Environment: E2E_WORK (work dir, default .state/e2e-kubernetes),
# K8S_VERSION (v1.37.2), ETCD_VERSION (v3.7.3), E2E_TPM (1), E2E_KEEP (1:
# leave the processes of a failed run alive for a look).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
export GOWORK=off GOFLAGS=-mod=mod

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.3}
STAGING_VERSION="v0.${K8S_VERSION#v1.}" # k8s.io/api etc. are tagged v0.X.Y for v1.X.Y
work=${E2E_WORK:-.state/e2e-kubernetes}
mkdir -p "$work/bin" "$work/logs"
work=$(cd "$work" && pwd)
logs=$work/logs
bin=$work/bin

now() { date +%s.%N; }
since() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.2f", e - s }'; }
ts() { date +%H:%M:%S; }

# ---------------------------------------------------------------- results
results=()
failed=0
step_name=""
step_t0=""
step_failed=0
begin() { step_name=$1; step_t0=$(now); step_failed=0; echo "---- $(ts) $step_name"; }
pass() {
  local t; t=$(since "$step_t0")
  results+=("PASS  ${t}s  $step_name${1:+  ($1)}")
  echo "PASS  ${t}s  $step_name${1:+  ($1)}"
}
fail() {
  local t; t=$(since "$step_t0")
  results+=("FAIL  ${t}s  $step_name: $1")
  echo "FAIL  ${t}s  $step_name: $1" >&2
  failed=1 step_failed=1
}
summary() {
  echo
  echo "==== e2e-kubernetes summary (kube-apiserver $K8S_VERSION, etcd $ETCD_VERSION, $(go env GOVERSION))"
  local r; for r in "${results[@]}"; do echo "  $r"; done
  echo "  logs: $logs"
  if [ "$failed" -eq 0 ]; then echo "e2e-kubernetes: PASS"; else echo "e2e-kubernetes: FAIL"; fi
}
# A failed step that later steps depend on ends the run.
die() { fail "$1"; exit 1; }
# pass unless the step failed already
end() { [ "$step_failed" = 1 ] || pass "$@"; }

# ---------------------------------------------------------------- processes
etcd_pid="" apiserver_pid="" plugin_pid="" swtpm_pid=""
cleanup() {
  trap - EXIT INT TERM
  if [ "$failed" -ne 0 ] && [ "${E2E_KEEP:-0}" = 1 ]; then
    echo "E2E_KEEP=1: left running: plugin=$plugin_pid kube-apiserver=$apiserver_pid etcd=$etcd_pid swtpm=$swtpm_pid"
  else
    # the apiserver first: its graceful shutdown hangs if etcd is gone
    local p
    for p in $apiserver_pid $plugin_pid $swtpm_pid $etcd_pid; do stop_pid "$p" 30; done
  fi
  summary
  [ "$failed" -eq 0 ]
}
# stop_pid PID SECONDS: SIGTERM, then SIGKILL after SECONDS; sets stop_rc
stop_pid() {
  local pid=$1 deadline=$(($(date +%s) + $2))
  kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; stop_rc=$?; return 0; }
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "   (pid $pid still running $2 s after SIGTERM: SIGKILL)"; kill -KILL "$pid" 2>/dev/null; break
    fi
    sleep 0.1
  done
  wait "$pid" 2>/dev/null; stop_rc=$?
}
trap cleanup EXIT
trap 'fail "interrupted"; exit 130' INT
trap 'fail "terminated"; exit 143' TERM

# ---------------------------------------------------------------- build
build_apiserver() {
  local out=$bin/kube-apiserver-$K8S_VERSION
  [ -x "$out" ] && return 0
  local d=$work/build/kube-apiserver-$K8S_VERSION
  rm -rf "$d"; mkdir -p "$d"
  # k8s.io/kubernetes's go.mod replaces its staging modules (k8s.io/api,
  # k8s.io/apiserver, ...) with ./staging/src/...; a module that depends on
  # it must replace them with their published versions. The list comes from
  # k8s.io/kubernetes's own go.mod, from the proxy.
  local gomod
  gomod=$(cd "$d" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
  [ -s "$gomod" ] || { echo "no go.mod for k8s.io/kubernetes@$K8S_VERSION" >&2; return 1; }
  local gover
  gover=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")
  {
    echo "module e2e.local/kube-apiserver"
    echo
    echo "go $gover"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*$#\t\1 => \1 '"$STAGING_VERSION"'#p' "$gomod"
    echo ")"
  } > "$d/go.mod"
  cat > "$d/main.go" <<'EOF'
// kube-apiserver, as k8s.io/kubernetes/cmd/kube-apiserver/apiserver.go.
package main

import (
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
EOF
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local v=k8s.io/component-base/version
  (cd "$d" && go mod tidy && CGO_ENABLED=0 go build -trimpath -o "$out.tmp" \
    -ldflags "-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean -X $v.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)" .) &&
    mv "$out.tmp" "$out"
}

build_etcd() {
  local out=$bin/etcd-$ETCD_VERSION
  [ -x "$out" ] && return 0
  local d=$work/build/etcd-$ETCD_VERSION
  rm -rf "$d"; mkdir -p "$d"
  printf 'module e2e.local/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$d/go.mod"
  cat > "$d/main.go" <<'EOF'
// etcd, as go.etcd.io/etcd/server/v3/main.go.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  (cd "$d" && go mod tidy && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp" .) && mv "$out.tmp" "$out"
}

begin "build hsmenv"
go build -o "$bin/hsmenv" ./cmd/hsmenv >"$logs/build-hsmenv.log" 2>&1 || { cat "$logs/build-hsmenv.log" >&2; die "go build ./cmd/hsmenv"; }
pass
hsmenv=$bin/hsmenv

begin "build etcd $ETCD_VERSION (cached: $([ -x "$bin/etcd-$ETCD_VERSION" ] && echo yes || echo no))"
build_etcd >"$logs/build-etcd.log" 2>&1 || { tail -30 "$logs/build-etcd.log" >&2; die "etcd build, see $logs/build-etcd.log"; }
pass "$(du -h "$bin/etcd-$ETCD_VERSION" | cut -f1)"

begin "build kube-apiserver $K8S_VERSION (cached: $([ -x "$bin/kube-apiserver-$K8S_VERSION" ] && echo yes || echo no))"
build_apiserver >"$logs/build-kube-apiserver.log" 2>&1 || { tail -30 "$logs/build-kube-apiserver.log" >&2; die "kube-apiserver build, see $logs/build-kube-apiserver.log"; }
pass "$(du -h "$bin/kube-apiserver-$K8S_VERSION" | cut -f1)"
etcd=$bin/etcd-$ETCD_VERSION
apiserver=$bin/kube-apiserver-$K8S_VERSION

[ "${1:-}" = "--build-only" ] && exit 0
for tool in curl jq openssl softhsm2-util ss base64 od; do
  command -v "$tool" >/dev/null || die "needs $tool"
done
tpm=${E2E_TPM:-1}
if [ "$tpm" = 1 ] && ! command -v swtpm >/dev/null; then echo "no swtpm: the TPM step is skipped"; tpm=0; fi

# ---------------------------------------------------------------- helpers
port=""
handed_out=" "
# free_port N: sets $port to a loopback TCP port such that port..port+N-1 are
# free (nobody listens) and were not handed out before in this run.
free_port() {
  local n=${1:-1} p i ok
  while :; do
    p=$((20000 + RANDOM % 30000)); ok=1
    for ((i = 0; i < n; i++)); do
      case $handed_out in *" $((p + i)) "*) ok=0 ;; esac
      ss -Htln "sport = :$((p + i))" | grep -q . && ok=0
    done
    [ "$ok" = 1 ] || continue
    for ((i = 0; i < n; i++)); do handed_out+="$((p + i)) "; done
    port=$p; return 0
  done
}
# wait_until SECONDS CMD...: run CMD every 0.2 s until it succeeds.
wait_until() {
  local deadline=$(($(date +%s) + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -ge "$deadline" ] && return 1
    sleep 0.2
  done
}
rand_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
# epoch seconds of an RFC 3339 time (slog's "time")
epoch() { date -d "$1" +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }

err=""
# api METHOD PATH [BODY [CONTENT-TYPE]]: sets $code (HTTP status) and $resp.
api() {
  local args=(-sS --max-time 30 --cacert "$pki/ca.crt" -H "Authorization: Bearer $token" -X "$1"
    -o "$work/resp.json" -w '%{http_code}')
  [ $# -ge 3 ] && args+=(-H "Content-Type: ${4:-application/json}" --data-binary "$3")
  rm -f "$work/resp.json"
  code=$(curl "${args[@]}" "https://127.0.0.1:$api_port$2" 2>"$work/curl.err") || code="000 ($(cat "$work/curl.err"))"
  resp=$(cat "$work/resp.json" 2>/dev/null)
}
healthz() { # PATH: 0 if it answers ok
  api GET "$1"; [ "$code" = 200 ] && [ "$resp" = ok ]
}

ns=e2e-kms
declare -A marker # Secret name -> its plaintext value
new_marker() { echo "e2e-plaintext-$1-$(rand_hex 8)"; }
create_secret() { # NAME
  local m; m=$(new_marker "$1")
  api POST "/api/v1/namespaces/$ns/secrets" \
    "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"$1\"},\"stringData\":{\"value\":\"$m\"}}"
  [ "$code" = 201 ] || { err="create $1: HTTP $code $(head -c 400 <<<"$resp")"; return 1; }
  marker[$1]=$m
}
update_secret() { # NAME: a new value
  local m; m=$(new_marker "$1")
  api PATCH "/api/v1/namespaces/$ns/secrets/$1" "{\"stringData\":{\"value\":\"$m\"}}" application/merge-patch+json
  [ "$code" = 200 ] || { err="update $1: HTTP $code $(head -c 400 <<<"$resp")"; return 1; }
  marker[$1]=$m
}
read_secret() { # NAME
  api GET "/api/v1/namespaces/$ns/secrets/$1"
  [ "$code" = 200 ] || { err="read $1: HTTP $code $(head -c 400 <<<"$resp")"; return 1; }
  local got; got=$(jq -r '.data.value' <<<"$resp" | base64 -d)
  [ "$got" = "${marker[$1]}" ] || { err="read $1: value '$got', want '${marker[$1]}'"; return 1; }
}
read_all() { local n; for n in "${!marker[@]}"; do read_secret "$n" || return 1; done; }
etcd_get() { # KEY FILE
  curl -fsS --max-time 10 -X POST "http://127.0.0.1:$etcd_port/v3/kv/range" \
    -d "{\"key\":\"$(printf %s "$1" | base64 -w0)\"}" | jq -r '.kvs[0].value // empty' | base64 -d >"$2"
  [ -s "$2" ]
}
prefix="k8s:enc:kms:v2:hsmenv:"
etcd_value=$work/etcd-value.bin
etcd_check() { # NAME [KEY_ID]: etcd holds the KMS v2 prefix and (if given) KEY_ID, never the plaintext; sets $etcd_key_id
  etcd_get "/registry/secrets/$ns/$1" "$etcd_value" || { err="etcd has no /registry/secrets/$ns/$1"; return 1; }
  [ "$(head -c ${#prefix} "$etcd_value")" = "$prefix" ] ||
    { err="etcd value of $1 starts with $(head -c 32 "$etcd_value" | od -An -c | tr -s ' ' | head -c 200)"; return 1; }
  if grep -qaF "${marker[$1]}" "$etcd_value" || grep -qaF "$(printf %s "${marker[$1]}" | base64 -w0 | head -c 24)" "$etcd_value"; then
    err="the plaintext of $1 is in etcd"; return 1
  fi
  etcd_key_id=$(grep -aoE 'hsmenv-[0-9a-f]{32}' "$etcd_value" | head -1)
  [ -z "${2:-}" ] || [ "$etcd_key_id" = "$2" ] || { err="$1 stored under key_id '$etcd_key_id', want $2"; return 1; }
}
etcd_check_all() { # KEY_ID
  local n; for n in "${!marker[@]}"; do etcd_check "$n" "$1" || return 1; done
}

# ---------------------------------------------------------------- plugin
sock=$work/run/kms.sock
plugin_n=0 plugin_log="" plugin_key_id="" plugin_t0="" plugin_rc=""
start_plugin() { # kms-plugin flags after --listen; sets plugin_pid, plugin_log, plugin_key_id, plugin_t0 (epoch of "listening")
  plugin_n=$((plugin_n + 1))
  plugin_log=$logs/plugin-$plugin_n.log
  echo "hsmenv kms-plugin --listen unix://$sock $*" >"$logs/plugin-$plugin_n.cmd"
  "$hsmenv" kms-plugin --listen "unix://$sock" "$@" 2>"$plugin_log" &
  plugin_pid=$!
  local deadline=$(($(date +%s) + 30)) line
  until line=$(grep -m1 '"msg":"listening"' "$plugin_log"); do
    if ! kill -0 "$plugin_pid" 2>/dev/null; then
      wait "$plugin_pid"; err="plugin exited with status $?: $(tail -n 3 "$plugin_log")"; plugin_pid=""; return 1
    fi
    [ "$(date +%s)" -ge "$deadline" ] && { err="no listening line in 30 s: $(tail -n 3 "$plugin_log")"; return 1; }
    sleep 0.05
  done
  plugin_key_id=$(jq -r .key_id <<<"$line")
  plugin_t0=$(epoch "$(jq -r .time <<<"$line")")
  [ -S "$sock" ] || { err="listening, but no socket at $sock"; return 1; }
  local mode; mode=$(stat -c %a "$sock")
  [ "$mode" = 600 ] || { err="socket mode $mode, want 600"; return 1; }
}
stop_plugin() { # SIGNAL: sets plugin_rc
  kill -"$1" "$plugin_pid"; { wait "$plugin_pid"; } 2>/dev/null; plugin_rc=$?; plugin_pid=""
}
stop_plugin_term() { # SIGTERM: a graceful stop (exit status 0, a "stopped" log line), the socket removed
  local t0; t0=$(now)
  stop_plugin TERM
  [ ! -e "$sock" ] || { err="socket left after SIGTERM"; return 1; }
  stop_note="plugin stopped by SIGTERM in $(since "$t0") s, exit status $plugin_rc, socket removed"
}
calls() { # METHOD [FROM-LINE]: calls of METHOD in the plugin log from line FROM-LINE on
  tail -n +"${2:-1}" "$plugin_log" | grep -c "\"method\":\"$1\""
}
bad_calls() { # [FROM-LINE]: calls whose outcome is not ok
  tail -n +"${1:-1}" "$plugin_log" | grep '"msg":"kms"' | grep -vc '"outcome":"ok"'
}
lines() { wc -l <"$plugin_log"; }
# call_times METHOD: seconds after the plugin's start of each call of METHOD
call_times() {
  local t out=""
  while read -r t; do out+="+$(sub "$(epoch "$t")" "$plugin_t0")s "; done < <(grep "\"method\":\"$1\"" "$plugin_log" | jq -r .time)
  echo "${out% }"
}

# ---------------------------------------------------------------- kube-apiserver
apiserver_n=0 apiserver_log=""
start_apiserver() {
  apiserver_n=$((apiserver_n + 1))
  apiserver_log=$logs/kube-apiserver-$apiserver_n.log
  "$apiserver" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" --cert-dir="$work/apiserver-certs" \
    --token-auth-file="$pki/tokens.csv" --anonymous-auth=false --authorization-mode=AlwaysAllow \
    --service-account-issuer="https://127.0.0.1:$api_port" --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" --service-cluster-ip-range=10.96.0.0/16 \
    --endpoint-reconciler-type=none \
    --encryption-provider-config="$work/encryption-config.yaml" --encryption-provider-config-automatic-reload=true \
    --profiling=false --v=2 >"$apiserver_log" 2>&1 &
  apiserver_pid=$!
  local deadline=$(($(date +%s) + 120))
  until healthz /readyz; do
    if ! kill -0 "$apiserver_pid" 2>/dev/null; then
      wait "$apiserver_pid"; err="kube-apiserver exited with status $?: $(tail -n 5 "$apiserver_log")"; apiserver_pid=""; return 1
    fi
    [ "$(date +%s)" -ge "$deadline" ] && { err="kube-apiserver not ready in 120 s: $resp"; return 1; }
    sleep 0.25
  done
}
stop_apiserver() {
  stop_pid "$apiserver_pid" 60; apiserver_pid=""
  [ "$stop_rc" = 0 ] || echo "   (kube-apiserver exit status $stop_rc after SIGTERM)"
}
restart_apiserver() { # sets restart_note
  local t0; t0=$(now)
  stop_apiserver
  local t1; t1=$(now)
  start_apiserver || return 1
  restart_note="stop $(sub "$t1" "$t0") s, start to ready $(since "$t1") s"
}

# wait_new_key_id KEY_ID PROBE TIMEOUT: update the Secret "probe" every second
# until etcd stores it under KEY_ID; with PROBE=1 also GET
# /healthz/kms-providers each time (which runs the apiserver's Status check
# when its cached result is older than 20 s). Sets poll_note.
wait_new_key_id() {
  local want=$1 probe=$2 deadline=$(($(date +%s) + $3)) writes=0
  until etcd_check probe "$want"; do
    [ "$(date +%s)" -ge "$deadline" ] && { err="no Secret stored under $want after $3 s (last: $etcd_key_id); Status calls at $(call_times Status)"; return 1; }
    sleep 1
    [ "$probe" = 1 ] && api GET /healthz/kms-providers
    update_secret probe || return 1
    writes=$((writes + 1))
  done
  local stored; stored=$(now)
  local enc; enc=$(grep -m1 '"method":"Encrypt"' "$plugin_log" | jq -r .time)
  poll_note="plugin up -> apiserver's Encrypt of a new seed $(sub "$(epoch "$enc")" "$plugin_t0") s, -> first Secret under the new key_id $(sub "$stored" "$plugin_t0") s ($writes writes in between); Status calls at $(call_times Status)"
}

# ---------------------------------------------------------------- the run
begin "SoftHSM2 token with AES-256 KEK kek-1 (throw-away, under $work/softhsm)"
module=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do [ -e "$m" ] && module=$m && break; done
[ -n "$module" ] || die "no libsofthsm2.so"
sh=$work/softhsm
rm -rf "$sh"; mkdir -p "$sh/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' "$sh" >"$sh/softhsm2.conf"
export SOFTHSM2_CONF=$sh/softhsm2.conf
rand_hex 12 >"$sh/pin"; chmod 600 "$sh/pin"
softhsm2-util --init-token --free --label e2e-kms --pin "$(cat "$sh/pin")" --so-pin "$(rand_hex 12)" >"$logs/softhsm.log" 2>&1 ||
  die "softhsm2-util --init-token: $(cat "$logs/softhsm.log")"
hsm_key() { echo "pkcs11:token=e2e-kms;object=$1?module-path=$module&pin-source=file:$sh/pin"; }
KEY1=$(hsm_key kek-1)
"$hsmenv" keygen --type aes-256 --key "$KEY1" >>"$logs/softhsm.log" 2>&1 || die "keygen kek-1: $(tail -n 3 "$logs/softhsm.log")"
pass

begin "certificates, service-account key, token (openssl)"
pki=$work/pki
rm -rf "$pki" "$work/apiserver-certs"; mkdir -p "$pki"
{
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 2 -subj /CN=e2e-kms-ca &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" -subj /CN=kube-apiserver &&
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$pki/ext" &&
    openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 -extfile "$pki/ext" -out "$pki/apiserver.crt" &&
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/sa.key" &&
    openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
} >"$logs/openssl.log" 2>&1 || die "openssl: $(tail -n 3 "$logs/openssl.log")"
token=$(rand_hex 16)
printf '%s,e2e-admin,e2e-admin,"system:masters"\n' "$token" >"$pki/tokens.csv"
chmod 600 "$pki"/*.key "$pki/tokens.csv"
pass

mkdir -p "$work/run"; chmod 700 "$work/run"; rm -f "$sock"
cat >"$work/encryption-config.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - kms:
          apiVersion: v2
          name: hsmenv
          endpoint: unix://$sock
          timeout: 5s
      - identity: {}
EOF

begin "start etcd $ETCD_VERSION"
free_port 2; etcd_port=$port
rm -rf "$work/etcd-data"
"$etcd" --name e2e --data-dir "$work/etcd-data" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
  --initial-cluster "e2e=http://127.0.0.1:$((etcd_port + 1))" --initial-cluster-state new \
  --log-level warn >"$logs/etcd.log" 2>&1 &
etcd_pid=$!
wait_until 30 curl -fsS "http://127.0.0.1:$etcd_port/health" || die "etcd not healthy in 30 s: $(tail -n 3 "$logs/etcd.log")"
pass "client http://127.0.0.1:$etcd_port"

begin "start hsmenv kms-plugin --key kek-1"
start_plugin --key "$KEY1" || die "$err"
K1=$plugin_key_id
pass "key_id $K1, socket 0600"

begin "start kube-apiserver $K8S_VERSION with the KMS v2 provider"
free_port; api_port=$port
start_apiserver || die "$err"
healthz /readyz/kms-providers || die "/readyz/kms-providers: $code $resp"
pass "https://127.0.0.1:$api_port; plugin calls so far: Status $(calls Status), Encrypt $(calls Encrypt)"

begin "create a Secret, read it back"
api POST /api/v1/namespaces "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$ns\"}}"
[ "$code" = 201 ] || die "create namespace: HTTP $code $resp"
create_secret s1 || die "$err"
read_secret s1 || die "$err"
pass

begin "etcd holds k8s:enc:kms:v2:hsmenv: and key_id $K1, not the plaintext"
etcd_get "/registry/namespaces/$ns" "$work/etcd-ns.bin" || die "no namespace in etcd: the etcd reads do not work"
etcd_check s1 "$K1" || die "$err"
pass "value of $(stat -c %s "$etcd_value") bytes starts '$(head -c ${#prefix} "$etcd_value")'; a namespace (not encrypted) starts '$(head -c 3 "$work/etcd-ns.bin")'"

begin "20 more Secrets cost no Encrypt (the seed is reused)"
enc0=$(calls Encrypt)
for i in $(seq 2 21); do create_secret "s$i" || die "$err"; done
read_all || die "$err"
enc1=$(calls Encrypt)
[ "$enc1" = "$enc0" ] || fail "Encrypt calls went from $enc0 to $enc1"
end "Encrypt calls: $enc1 in all"

begin "disaster recovery from etcd without the cluster: hsmenv kms-plugin recover; hsmenv decrypt of the seed"
# as docs/kubernetes.md says: the whole value with 'kms-plugin recover' ...
etcd_get "/registry/secrets/$ns/s1" "$etcd_value" || die "no s1 in etcd"
timeout 60 "$hsmenv" kms-plugin recover -q --key "$KEY1" --etcd-key "/registry/secrets/$ns/s1" -o "$work/s1.pb" "$etcd_value" 2>"$logs/recovery.log" ||
  die "hsmenv kms-plugin recover: $(cat "$logs/recovery.log")"
[ "$(head -c 4 "$work/s1.pb" | od -An -tx1 | tr -d ' ')" = 6b387300 ] || fail "recovered object does not start with k8s\\x00"
grep -qaF "${marker[s1]}" "$work/s1.pb" || fail "recovered object lacks the Secret's value"
rm -f "$work/s1.pb"
# ... and the seed alone: field 3 of the EncryptedObject, opened by 'hsmenv decrypt'
eop=$work/build/eoparse
mkdir -p "$eop"
printf 'module e2e.local/eoparse\n\ngo 1.26.0\n' >"$eop/go.mod"
cat >"$eop/main.go" <<'EOF'
// eoparse: reads an etcd value k8s:enc:kms:v2:<name>:<EncryptedObject protobuf>
// on stdin, writes encryptedDEKSource (field 3) to the file named by its
// argument and prints keyID (field 2) and encryptedDEKSourceType (field 5).
package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

func main() {
	in, _ := io.ReadAll(os.Stdin)
	if !bytes.HasPrefix(in, []byte("k8s:enc:kms:v2:")) {
		fail("no k8s:enc:kms:v2: prefix")
	}
	in = in[len("k8s:enc:kms:v2:"):]
	i := bytes.IndexByte(in, ':')
	if i < 0 {
		fail("no provider name")
	}
	b := in[i+1:]
	var keyID string
	var dek []byte
	var typ uint64
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			fail("bad tag")
		}
		b = b[n:]
		switch tag & 7 {
		case 0:
			v, n := binary.Uvarint(b)
			if n <= 0 {
				fail("bad varint")
			}
			b = b[n:]
			if tag>>3 == 5 {
				typ = v
			}
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				fail("bad length")
			}
			v := b[n : n+int(l)]
			b = b[n+int(l):]
			switch tag >> 3 {
			case 2:
				keyID = string(v)
			case 3:
				dek = v
			}
		default:
			fail("unexpected wire type")
		}
	}
	if err := os.WriteFile(os.Args[1], dek, 0o600); err != nil {
		fail(err.Error())
	}
	fmt.Printf("keyID=%s encryptedDEKSource=%d bytes encryptedDEKSourceType=%d\n", keyID, len(dek), typ)
}

func fail(s string) { fmt.Fprintln(os.Stderr, "eoparse:", s); os.Exit(1) }
EOF
(cd "$eop" && go build -o "$bin/eoparse" .) >"$logs/build-eoparse.log" 2>&1 || die "build eoparse: $(cat "$logs/build-eoparse.log")"
eo=$("$bin/eoparse" "$work/dek-source.bin" <"$etcd_value") || die "eoparse failed"
rm -f "$work/seed.bin"
"$hsmenv" decrypt -q --key "$KEY1" --require-context kubernetes.io/kms-v2=seed -o "$work/seed.bin" "$work/dek-source.bin" 2>>"$logs/recovery.log" ||
  die "hsmenv decrypt: $(cat "$logs/recovery.log")"
[ "$(stat -c %s "$work/seed.bin")" = 32 ] || fail "seed of $(stat -c %s "$work/seed.bin") bytes, want 32"
rm -f "$work/seed.bin"
end "recover: the Secret (k8s\\x00 protobuf with its value); seed: $eo, opened to 32 bytes"

begin "rotate: kek-2 first, kek-1 under --decrypt-key; plugin restarted (SIGTERM)"
KEY2=$(hsm_key kek-2)
"$hsmenv" keygen --type aes-256 --key "$KEY2" >>"$logs/softhsm.log" 2>&1 || die "keygen kek-2: $(tail -n 3 "$logs/softhsm.log")"
create_secret probe || die "$err"
stop_plugin_term || die "$err"
note1=$stop_note
start_plugin --key "$KEY2" --decrypt-key "$KEY1" || die "$err"
K2=$plugin_key_id
[ "$K2" != "$K1" ] || die "key_id unchanged after rotation: $K2"
read_all || die "$err"
end "$note1; new key_id $K2; old Secrets read"

begin "the apiserver's Status poll picks up $K2 (no health probes: the 1-minute background poll)"
wait_new_key_id "$K2" 0 200 || die "$err"
pass "$poll_note"

begin "new Secrets are stored under $K2, old ones still read"
create_secret r1 || die "$err"
etcd_check r1 "$K2" || die "$err"
etcd_check s1 "$K1" || die "$err"
read_all || die "$err"
pass

begin "plugin killed (SIGKILL): its stale socket is replaced by a new plugin"
stop_plugin KILL
[ -S "$sock" ] || echo "   (no socket left after SIGKILL)"
stale=$([ -S "$sock" ] && echo "stale socket left" || echo "no socket left")
start_plugin --key "$KEY2" --decrypt-key "$KEY1" || die "$err"
[ "$plugin_key_id" = "$K2" ] || die "key_id $plugin_key_id after restart, want $K2"
read_all || die "$err"
create_secret r2 || die "$err"
# the apiserver reconnects on its next Status check; /healthz/kms-providers
# runs one when the cached result is over 20 s old
wait_until 90 bash -c "grep -q '\"method\":\"Status\"' '$plugin_log'" || die "no Status call from the apiserver within 90 s"
pass "$stale; first Status call from the apiserver at $(call_times Status | cut -d' ' -f1) after the restart"

begin "kube-apiserver restarted: cold reads decrypt both seeds (kek-1's through --decrypt-key)"
from=$(($(lines) + 1))
restart_apiserver || die "$err"
read_all || die "$err"
etcd_check r2 "$K2" || die "$err"
dec=$(calls Decrypt "$from"); bad=$(bad_calls "$from")
[ "$dec" -ge 2 ] || fail "only $dec Decrypt calls after the restart, want >= 2 (one per seed)"
[ "$bad" = 0 ] || fail "$bad plugin calls failed: $(tail -n +"$from" "$plugin_log" | grep '"msg":"kms"' | grep -v '"outcome":"ok"' | head -n 3)"
end "$restart_note; ${#marker[@]} Secrets read; plugin calls: Decrypt $dec, Encrypt $(calls Encrypt "$from"), Status $(calls Status "$from")"

begin "re-encrypt every Secret (GET + PUT, as kubectl replace), then drop kek-1"
stale_n=0
for n in "${!marker[@]}"; do
  etcd_check "$n" && [ "$etcd_key_id" = "$K1" ] && stale_n=$((stale_n + 1))
  # what 'kubectl get secrets -o json | kubectl replace -f -' does: GET, PUT back
  api GET "/api/v1/namespaces/$ns/secrets/$n"
  [ "$code" = 200 ] || die "get $n: HTTP $code $resp"
  api PUT "/api/v1/namespaces/$ns/secrets/$n" "$resp"
  [ "$code" = 200 ] || die "replace $n: HTTP $code $resp"
done
etcd_check_all "$K2" || die "after the updates: $err"
stop_plugin_term || die "$err"
start_plugin --key "$KEY2" || die "$err"
[ "$plugin_key_id" = "$K2" ] || die "key_id $plugin_key_id with kek-2 alone, want $K2 (the --key set is the same)"
from=$(($(lines) + 1))
restart_apiserver || die "$err"
read_all || die "$err"
[ "$(bad_calls "$from")" = 0 ] || die "plugin calls failed: $(grep -v '"outcome":"ok"' "$plugin_log" | grep '"msg":"kms"' | head -n 3)"
end "$stale_n Secrets were under $K1, all now under $K2; kek-1 gone, all ${#marker[@]} read after an apiserver restart"

if [ "$tpm" = 1 ]; then
  begin "rotate to a TPM key (swtpm, tpm:key-file ECC P-256), kek-2 under --decrypt-key"
  free_port 2; tpm_port=$port
  rm -rf "$work/swtpm"; mkdir -p "$work/swtpm"
  swtpm socket --tpm2 --tpmstate dir="$work/swtpm" --server type=tcp,port="$tpm_port",bindaddr=127.0.0.1 \
    --ctrl type=tcp,port=$((tpm_port + 1)),bindaddr=127.0.0.1 --flags not-need-init,startup-clear >"$logs/swtpm.log" 2>&1 &
  swtpm_pid=$!
  wait_until 10 bash -c "ss -Htln 'sport = :$tpm_port' | grep -q ." || die "swtpm not listening: $(cat "$logs/swtpm.log")"
  KEY3="tpm:key-file=$work/swtpm/kek-3.key?device=tcp://127.0.0.1:$tpm_port"
  "$hsmenv" keygen --type ecc-p256 --key "$KEY3" >"$logs/tpm-keygen.log" 2>&1 || die "keygen on swtpm: $(cat "$logs/tpm-keygen.log")"
  stop_plugin_term || die "$err"
  start_plugin --key "$KEY3" --decrypt-key "$KEY2" || die "$err"
  K3=$plugin_key_id
  [ "$K3" != "$K2" ] || die "key_id unchanged: $K3"
  read_all || die "$err"
  end "new key_id $K3"

  begin "the apiserver picks up $K3 (GET /healthz/kms-providers every second)"
  wait_new_key_id "$K3" 1 200 || die "$err"
  pass "$poll_note"

  begin "kube-apiserver restarted: kek-2 seeds through --decrypt-key, new ones through the TPM"
  create_secret t1 || die "$err"
  etcd_check t1 "$K3" || die "$err"
  from=$(($(lines) + 1))
  restart_apiserver || die "$err"
  read_all || die "$err"
  dec=$(calls Decrypt "$from"); bad=$(bad_calls "$from")
  [ "$bad" = 0 ] || die "plugin calls failed: $(tail -n +"$from" "$plugin_log" | grep '"msg":"kms"' | grep -v '"outcome":"ok"' | head -n 3)"
  pass "$restart_note; ${#marker[@]} Secrets read; Decrypt calls $dec"
fi

begin "final stop of the plugin: SIGTERM stops it gracefully (exit status 0, logged), socket removed"
stop_plugin_term || die "$err"
[ "$plugin_rc" = 0 ] || fail "exit status $plugin_rc after SIGTERM, want 0 (a requested stop is a clean one for a service)"
tail -n 3 "$plugin_log" | grep -q '"msg":"stopped"' || fail "no \"stopped\" log line after SIGTERM"
end "$stop_note"

if [ "$tpm" = 1 ]; then
  # after the plugin: swtpm serves one TCP client at a time
  begin "kms-plugin recover of a Secret stored under the TPM key"
  etcd_get "/registry/secrets/$ns/t1" "$etcd_value" || die "no t1 in etcd"
  timeout 60 "$hsmenv" kms-plugin recover -q --key "$KEY3" --etcd-key "/registry/secrets/$ns/t1" "$etcd_value" 2>"$logs/recovery-tpm.log" >"$work/t1.pb" ||
    die "kms-plugin recover with the TPM key: $(cat "$logs/recovery-tpm.log")"
  grep -qaF "${marker[t1]}" "$work/t1.pb" || die "recovered t1 lacks its value"
  rm -f "$work/t1.pb"
  pass
fi

echo
echo "plugin latencies (ms, every call of this run): $(cat "$logs"/plugin-*.log | jq -rs '
  [.[] | select(.msg == "kms")] | group_by(.method) | map("\(.[0].method) n=\(length) max=\(map(.latency_ms) | max)") | join(", ")')"

exit "$failed"
