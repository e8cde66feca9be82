#!/usr/bin/env bash
# Installs every Debian 12 package BraggNAC needs to build, test and benchmark.
# Run as root (or with sudo). Idempotent: skips apt when everything is present.
set -euo pipefail
PKGS=(cmake ninja-build g++ pkg-config git
      qt6-base-dev qt6-base-dev-tools qt6-charts-dev libqt6opengl6-dev libgl1-mesa-dev qt6-svg-dev
      libtorch-dev libopenblas0-pthread libhdf5-dev zlib1g-dev libdeflate0 libopencv-dev libtiff-dev
      libsqlite3-dev nlohmann-json3-dev libopenmpi-dev openmpi-bin
      xvfb xauth fonts-dejavu-core ccache libcli11-dev libsystemc-dev python3-optuna
      # The interop tests (tst_modelfile: TorchScript loaded in Python; h5py-written files) and
      # the fuzz/sanitizer suite (scripts/fuzz.sh, scripts/sanitize.sh: clang + libFuzzer).
      python3-numpy python3-h5py python3-torch clang libfuzzer-14-dev)
if [ "${BRAGGNAC_BENCH:-0}" = 1 ]; then
  PKGS+=(python3-scipy)
fi
if [ "${BRAGGNAC_SCREENSHOTS:-0}" = 1 ]; then
  PKGS+=(imagemagick x11-apps)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
