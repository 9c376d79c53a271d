#!/usr/bin/env bash
# Sets up a fresh machine (idempotent), builds, and runs the whole test suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh"
cd "${COMPRESS_BUILD_DIR:-$root/build}"
ctest --output-on-failure -j2 "$@"
