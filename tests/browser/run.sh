#!/usr/bin/env bash
# Runs the dashboard test (Node's test runner + playwright-core driving Debian's headless
# chromium) against `hearth serve` with the fixture model. Usage: run.sh HEARTH_BIN
# FIXTURES_DIR OUT_DIR (the screenshot goes to OUT_DIR/dashboard.png). Installs the locked
# npm packages (npm ci) when node_modules is missing; skips with one line when chromium
# or the fixtures are absent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$1"
fixtures="${HEARTH_FIXTURES:-$2}"
out="$3"
model="$fixtures/models/llama-spm-f16.gguf"
if [ ! -x /usr/bin/chromium ]; then
  echo "SKIP: /usr/bin/chromium not installed (scripts/setup.sh installs it)"
  exit 0
fi
if [ ! -f "$model" ]; then
  echo "SKIP: fixtures not found at $fixtures"
  exit 0
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
mkdir -p "$out"
work="$(mktemp -d /tmp/hearth-browser-XXXXXX)"
log="$work/serve.log"
"$bin" serve -m "$model" --port 0 --slots 2 --ctx 512 -t 1 --db "$work/hearth.db" 2>"$log" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port=""
for _ in $(seq 1 600); do
  port="$(grep -o '"msg":"listening".*"port":[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
  if [ -n "$port" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready")" = 200 ]; then break; fi
  kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
cd "$here"
HEARTH_URL="http://127.0.0.1:$port" HEARTH_MODEL="llama-spm-f16" HEARTH_SCREENSHOT="$out/dashboard.png" \
  HEARTH_PROFILE_DIR="$work/profile" node --test --test-reporter=spec
