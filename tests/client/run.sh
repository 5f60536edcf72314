#!/usr/bin/env bash
# Runs the openai-SDK client tests (Node's test runner) against `hearth serve` with the
# fixture model. Usage: run.sh HEARTH_BIN FIXTURES_DIR. Installs the locked npm packages
# (npm ci) when node_modules is missing; skips with one line when fixtures are absent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$1"
fixtures="${HEARTH_FIXTURES:-$2}"
model="$fixtures/models/llama-spm-f16.gguf"
if [ ! -f "$model" ]; then
  echo "SKIP: fixtures not found at $fixtures"
  exit 0
fi
if [ ! -d "$here/node_modules/openai" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
log="$(mktemp /tmp/hearth-client-XXXXXX)"
"$bin" serve -m "$model" --port 0 --slots 2 --ctx 2048 -t 1 2>"$log" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT
port=""
for _ in $(seq 1 600); do
  port="$(grep -o '"msg":"listening".*"port":[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
  if [ -n "$port" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready")" = 200 ]; then break; fi
  kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
# A second server for embeddings: the fixture bert (an encoder, mean pooling).
bert="$fixtures/models/bert-wpm-f16.gguf"
blog="$(mktemp /tmp/hearth-client-bert-XXXXXX)"
"$bin" serve -m "$bert" --port 0 -t 1 2>"$blog" &
bpid=$!
trap 'cleanup; kill "$bpid" 2>/dev/null || true; wait "$bpid" 2>/dev/null || true; rm -f "$blog"' EXIT
bport=""
for _ in $(seq 1 600); do
  bport="$(grep -o '"msg":"listening".*"port":[0-9]*' "$blog" | grep -o '[0-9]*$' || true)"
  if [ -n "$bport" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$bport/ready")" = 200 ]; then break; fi
  kill -0 "$bpid" 2>/dev/null || { cat "$blog"; exit 1; }
  sleep 0.1
done
cd "$here"
HEARTH_URL="http://127.0.0.1:$port/v1" HEARTH_MODEL="llama-spm-f16" \
  HEARTH_EMBED_URL="http://127.0.0.1:$bport/v1" HEARTH_EMBED_MODEL="bert-wpm-f16" node --test --test-reporter=spec
