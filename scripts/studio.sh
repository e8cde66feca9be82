#!/usr/bin/env bash
# The main job: installs what is missing (apt-get), builds, and starts BraggNAC Studio.
# Arguments are passed to braggnac-studio (e.g. a frame file to open).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-debian.sh
./scripts/build.sh --target braggnac-studio braggnac
exec ./"${BRAGGNAC_BUILD_DIR:-build}"/app/studio/braggnac-studio "$@"
