#!/usr/bin/env bash
# `make run`: starts Hearth on the default model. Until the server lands this streams a
# completion from the fixture model (synthetic weights: the text is noise).
set -euo pipefail
bin="$1"
model="${HEARTH_MODEL:-$(dirname "$0")/../../shared/fixtures/models/llama-spm-f16.gguf}"
if [ ! -f "$model" ]; then
  echo "run: no model found at $model; set HEARTH_MODEL=/path/to/model.gguf" >&2
  exit 1
fi
echo "run: $model (synthetic fixture weights: its output is noise; set HEARTH_MODEL for a real model)" >&2
exec "$bin" run -m "$model" -p "${HEARTH_PROMPT:-Once upon a time}" -n 64
