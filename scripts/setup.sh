#!/usr/bin/env bash
# Installs every Debian package Hearth needs to build, test and run.
# Idempotent and non-interactive: it asks apt only for what is missing, and works as
# root on a fresh machine (uses sudo when not root). It never downloads anything else.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config         # toolchain
  clang                                    # fuzzing and sanitizer builds
  libcmocka-dev                            # unit tests
  libpcre2-dev libutf8proc-dev             # tokenizer pre-tokenizers and unicode
  libjansson-dev libmicrohttpd-dev         # JSON and the HTTP server
  libcurl4-openssl-dev libyaml-dev         # HTTP client and config
  libsqlite3-dev libssl-dev                # request store and sha256
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# the openai-SDK client tests (tests/client, which runs `npm ci` itself) need Node and npm
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
