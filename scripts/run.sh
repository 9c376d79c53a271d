#!/usr/bin/env bash
# The main job: set up this machine (idempotent), build the CLI, and run the
# quickstart pipeline (examples/recipes/quickstart.json): train the Fashion-MNIST
# cnn baseline (or reuse out/cnn-baseline.pt from an earlier run), prune it to
# half its MACs, distill from the unpruned model, quantize to INT8, evaluate
# every model on the full test set, time them side by side, and print the
# summary table. Reports: out/quickstart/report.{json,md,html}.
# A rerun skips every stage whose inputs and options are unchanged.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
echo "== build"
bash "$root/scripts/build.sh" compress_cli | tail -1
cd "$root"
echo "== compress run examples/recipes/quickstart.json -o out/quickstart"
time build/bin/compress run examples/recipes/quickstart.json -o out/quickstart
