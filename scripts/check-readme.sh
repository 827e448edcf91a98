#!/usr/bin/env bash
# Fails unless the README's first two commands are `make demo` and `make
# test`, the Makefile targets that run the demo and the test suite (and that
# .ci/run runs).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t cmds < <(awk '/^```/{f=!f; next} f && NF {print}' README.md | head -2)
[ "${cmds[0]:-}" = "make demo" ] || { echo "README: first command is '${cmds[0]:-}', expected 'make demo'" >&2; exit 1; }
[ "${cmds[1]:-}" = "make test" ] || { echo "README: second command is '${cmds[1]:-}', expected 'make test'" >&2; exit 1; }
grep -q '^demo:' Makefile && grep -q '^test:' Makefile || { echo "Makefile lacks demo or test" >&2; exit 1; }
grep -qx 'make test' .ci/run || { echo ".ci/run does not run 'make test'" >&2; exit 1; }
