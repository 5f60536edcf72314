#!/usr/bin/env bash
# Runs the openai-SDK client tests (Node's test runner, every *.test.mjs here, one file at
# a time) against `hearth serve` with the fixture models: a chat server, an embeddings
# server and a server with API keys. Usage: run.sh HEARTH_BIN FIXTURES_DIR. Installs the
# locked npm packages (npm ci) when node_modules is missing or was installed from another
# lock; skips with one line when fixtures are absent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$1"
fixtures="${HEARTH_FIXTURES:-$2}"
model="$fixtures/models/llama-spm-f16.gguf"
if [ ! -f "$model" ]; then
  echo "SKIP: fixtures not found at $fixtures"
  exit 0
fi
if ! cmp -s "$here/package-lock.json" "$here/node_modules/.hearth-installed-lock"; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$here/package-lock.json" "$here/node_modules/.hearth-installed-lock"
fi
tmp="$(mktemp -d /tmp/hearth-client-XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# serve NAME ARGS...: starts `hearth serve ARGS --port 0`, waits for /ready, sets port_NAME.
serve() {
  local name="$1" port="" pid
  shift
  "$bin" serve "$@" --port 0 2>"$tmp/$name.log" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 600); do
    port="$(grep -o '"msg":"listening".*"port":[0-9]*' "$tmp/$name.log" | grep -o '[0-9]*$' || true)"
    if [ -n "$port" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready")" = 200 ]; then break; fi
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/$name.log"; exit 1; }
    sleep 0.1
  done
  printf -v "port_$name" '%s' "$port"
}

serve chat -m "$model" --slots 2 --ctx 2048 -t 1
# the fixture bert (an encoder, mean pooling) for embeddings
serve embed -m "$fixtures/models/bert-wpm-f16.gguf" -t 1
# API keys: authentication, permissions, rate limits and the SDK's retries
export HEARTH_SDK_ADMIN_KEY="sdk-admin-key-0123456789"
export HEARTH_SDK_NOTOOLS_KEY="sdk-notools-key-0123456789"
export HEARTH_SDK_SINGLE_KEY="sdk-single-key-0123456789"
export HEARTH_SDK_TPM_KEY="sdk-tpm-key-0123456789"
cat >"$tmp/keys.yaml" <<EOF
keys:
  - {name: sdk-admin, env: HEARTH_SDK_ADMIN_KEY, admin: true}
  - {name: sdk-notools, env: HEARTH_SDK_NOTOOLS_KEY, tools: false}
  - {name: sdk-single, env: HEARTH_SDK_SINGLE_KEY, max_concurrent: 1}
  - {name: sdk-tpm, env: HEARTH_SDK_TPM_KEY, tokens_per_minute: 6}
defaults: {threads: 1, slots: 2, ctx: 2048}
models:
  - {name: llama-spm-f16, path: '$model', preload: true}
  - {name: llama-wait, path: '$model', preload: true, slots: 1, max_queue_wait: 100ms}
EOF
serve keyed -c "$tmp/keys.yaml"

cd "$here"
HEARTH_URL="http://127.0.0.1:$port_chat/v1" HEARTH_MODEL="llama-spm-f16" \
  HEARTH_EMBED_URL="http://127.0.0.1:$port_embed/v1" HEARTH_EMBED_MODEL="bert-wpm-f16" \
  HEARTH_KEYED_URL="http://127.0.0.1:$port_keyed/v1" \
  node --test --test-concurrency=1 --test-reporter=spec ./*.test.mjs
