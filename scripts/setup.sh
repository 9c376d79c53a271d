#!/usr/bin/env bash
# Installs every package the project needs from Debian's archive.
# Idempotent: prints nothing and touches nothing when all is already there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libdnnl-dev libeigen3-dev libcxxopts-dev nlohmann-json3-dev
  catch2 libgloo-dev libopenblas0-pthread libbenchmark-dev
  python3-torch python3-torchvision
  dataset-fashion-mnist zlib1g-dev libsimde-dev
  chromium  # headless, by the test that renders pipeline reports (tests/pipeline/test_report.cpp)
  jq        # by the bench/*.sh scripts that tabulate JSON reports
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done" >&2
