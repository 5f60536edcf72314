#!/bin/sh
# Configures and builds the fuzz variant: build.sh SOURCE_DIR BUILD_DIR CLANG [FIXTURES_DIR].
# Used by `make fuzz` and by the CTest test fuzz/build; incremental after the first run.
set -eu
src=$1 dir=$2 cc=$3
fixtures=${4:-$src/../shared/fixtures}
jobs=${FUZZ_JOBS:-2}
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake -S "$src" -B "$dir" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release -DHEARTH_FUZZ=ON \
        -DHEARTH_FIXTURES="$fixtures" >/dev/null
fi
cmake --build "$dir" -j "$jobs"
