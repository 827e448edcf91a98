#!/usr/bin/env bash
# Installs what the tests need on a Debian machine with Go: the real tokens,
# the TPM simulator, age 1.1.1 for the age plugin tests, jq and openssl for
# the doc examples (Debian packages), and the JS ESDK peer (npm, from the
# committed lock file).
# Idempotent; needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(softhsm2 swtpm swtpm-tools libnss3 opensc tpm2-tools libtpm2-pkcs11-1 age jq openssl nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node may come from elsewhere than Debian (a newer one on the image): keep it.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]}"
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "deps: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d interop/node_modules/@aws-crypto/client-node ] || [ interop/package-lock.json -nt interop/node_modules/.package-lock.json ]; then
  echo "deps: npm ci (interop)" >&2
  npm ci --prefix interop --no-audit --no-fund --loglevel=error >/dev/null
fi
