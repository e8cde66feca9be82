#!/usr/bin/env bash
# Configures and builds BraggNAC into ./build (Release, Ninja). Extra args go to cmake --build.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BRAGGNAC_BUILD_DIR:-build}
JOBS=${BRAGGNAC_JOBS:-$(nproc)}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$BUILD_DIR" -j "$JOBS" "$@"
