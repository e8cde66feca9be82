#!/usr/bin/env bash
# Rebuilds the studio screenshots in docs/images/studio-*.png from the running application:
# builds braggnac-studio, starts it under Xvfb (1600x1000) with --screenshot-tour, which opens
# the simulated demo frames, finds and fits the peaks, trains a small model for its predictions,
# visits every stage and saves QWidget::grab() of the window per view. Before the tour a small
# real search (`braggnac search`, 16 trials x 4 epochs on 3,000 simulated patches) makes the
# study the Search stage attaches to (BRAGGNAC_TOUR_STUDY). A few minutes on 2 cores.
# Environment: BRAGGNAC_BUILD_DIR (default build), SCREENSHOT_DIR (default docs/images).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BRAGGNAC_BUILD_DIR:-build}
OUT_DIR=${SCREENSHOT_DIR:-docs/images}
./scripts/setup-debian.sh
./scripts/build.sh --target braggnac-studio braggnac
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/braggnac-xdg}
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$BUILD_DIR/app/braggnac/braggnac" simulate patches --out "$tmp/search-patches.h5" --n 3000 --seed 1 >/dev/null
"$BUILD_DIR/app/braggnac/braggnac" search "$tmp/search-patches.h5" --space nac --study "$tmp/search-demo.db" \
  --trials 16 --epochs 4 --population 8 --seed 1 --quiet
export BRAGGNAC_TOUR_STUDY="$tmp/search-demo.db"
xvfb-run -a -s "-screen 0 1600x1000x24" \
  "$BUILD_DIR/app/studio/braggnac-studio" --screenshot-tour "$tmp"
mkdir -p "$OUT_DIR"
shopt -s nullglob
shots=("$tmp"/studio-*.png)
if [ ${#shots[@]} -eq 0 ]; then
  echo "screenshots.sh: the tour saved no screenshot" >&2
  exit 1
fi
cp "${shots[@]}" "$OUT_DIR"/
for f in "${shots[@]}"; do echo "$OUT_DIR/$(basename "$f")"; done
