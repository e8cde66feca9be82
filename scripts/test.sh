#!/usr/bin/env bash
# The test command: installs what is missing (apt-get), builds, and runs every test with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-debian.sh
./scripts/build.sh
mkdir -p /tmp/braggnac-xdg && chmod 700 /tmp/braggnac-xdg
cd "${BRAGGNAC_BUILD_DIR:-build}"
QT_QPA_PLATFORM=offscreen ctest --output-on-failure --timeout 900 "$@"
