#!/usr/bin/env bash
# `make run`: serves a model on http://127.0.0.1:8080 (Ctrl-C stops it).
#  - HEARTH_CONFIG or HEARTH_MODEL set: serves exactly that.
#  - otherwise the default model, Qwen2.5-0.5B-Instruct Q4_K_M (pinned revision and
#    sha256), from the model store, pulled there first when the network allows;
#  - offline, a small synthetic model instead (hearth mkmodel, else the shared test
#    fixture), whose output is noise.
set -euo pipefail
bin="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
port="${HEARTH_PORT:-8080}"
hint() {
  echo "run: try   curl -s http://127.0.0.1:$port/v1/chat/completions -H 'Content-Type: application/json' \\" >&2
  echo "run:         -d '{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],\"max_tokens\":32}'" >&2
}

if [ -n "${HEARTH_CONFIG:-}" ] || [ -n "${HEARTH_MODEL:-}" ]; then
  exec "$bin" serve
fi

DEFAULT_URL="hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF@9217f5db79a29953eb74d5343926648285ec7e67/qwen2.5-0.5b-instruct-q4_k_m.gguf"
DEFAULT_SHA256="74a4da8c9fdbcd15bd1f6d01d621410d31c6fc00986f5eb687824e7b93d7a9db"
store="${HEARTH_MODELS:-${XDG_DATA_HOME:-$HOME/.local/share}/hearth/models}"
model="$store/qwen2.5-0.5b-instruct-q4_k_m.gguf"

if [ -f "$model" ] || "$bin" pull "$DEFAULT_URL" --sha256 "$DEFAULT_SHA256" --connect-timeout 5; then
  echo "run: serving $model" >&2
  hint "qwen2.5-0.5b-instruct-q4_k_m"
  exec "$bin" serve -m "$model"
fi

echo "run: could not download the default model (offline?); falling back to a synthetic model." >&2
synthetic="$root/build/synthetic-tiny.gguf"
if [ -f "$synthetic" ] || "$bin" mkmodel --arch llama --dim 512 --layers 4 --heads 8 --kv-heads 4 --ffn 1024 \
     --vocab 8192 --type q8_0 --seed 1 -o "$synthetic" >/dev/null 2>&1; then
  model="$synthetic"
else
  model="$(cd "$root/.." && pwd)/shared/fixtures/models/llama-spm-q8_0.gguf"
fi
if [ ! -f "$model" ]; then
  echo "run: no synthetic model either; set HEARTH_MODEL=/path/to/model.gguf or run 'hearth pull URL'" >&2
  exit 1
fi
cat >&2 <<MSG
run: ================================================================================
run: SERVING A SYNTHETIC MODEL WITH RANDOM WEIGHTS: ITS OUTPUT IS NOISE.
run:   $model
run: For real answers, with network access:
run:   $bin pull $DEFAULT_URL --sha256 $DEFAULT_SHA256
run:   make run
run: or serve any GGUF model:  HEARTH_MODEL=/path/to/model.gguf make run
run: ================================================================================
MSG
hint "$(basename "$model" .gguf)"
exec "$bin" serve -m "$model"
