#!/bin/sh
# Runs one fuzz target: run.sh BUILD_DIR TARGET SECONDS. The working corpus grows in
# BUILD_DIR/corpus/TARGET, starting from the committed seeds (tests/fuzz/corpus/TARGET)
# and the generated ones (BUILD_DIR/seeds/TARGET); crashing inputs land in
# BUILD_DIR/crashes/. Exits non-zero when the target finds a crash, leak or timeout.
set -eu
dir=$1 target=$2 secs=$3
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir/corpus/$target" "$dir/seeds/$target" "$dir/crashes"
rm -f "$dir/seeds/$target"/seed-*
"$dir/seed_gen" "$target" "$dir/seeds/$target"
set -- "$dir/corpus/$target" "$dir/seeds/$target"
[ -d "$here/corpus/$target" ] && set -- "$@" "$here/corpus/$target"
exec "$dir/$target" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
     -print_final_stats=1 -artifact_prefix="$dir/crashes/$target-" "$@"
