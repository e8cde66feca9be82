#!/usr/bin/env bash
# Configures and builds BraggNAC into ./build (Release, Ninja). Extra args go to cmake --build.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BRAGGNAC_BUILD_DIR:-build}
JOBS=${BRAGGNAC_JOBS:-$(nproc)}
# ccache: paths below the checkout are hashed relative to it, so another clone of the same
# sources (CI) reuses the cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  LAUNCHER=()
  # ccache (when installed) makes rebuilds and parallel build folders cheap on two cores.
  if command -v ccache >/dev/null 2>&1; then
    LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  fi
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "${LAUNCHER[@]}"
fi
cmake --build "$BUILD_DIR" -j "$JOBS" "$@"
