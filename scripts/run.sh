#!/usr/bin/env bash
# The main job on the bundled example: set up (idempotent), build, make the
# example model (torchvision resnet18 traced with random weights), inspect it,
# round-trip it through the IR and fold its batch norms, and check both
# results against the original.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
echo "== build"
bash "$root/scripts/build.sh" compress_cli | tail -1
cli="$root/build/bin/compress"
work="$root/out"
mkdir -p "$work"

echo "== example model: torchvision resnet18 (random weights), traced with torch.jit.trace"
/usr/bin/python3 "$root/tests/fixtures/make_fixtures.py" "$work" resnet18 2>/dev/null
model="$work/resnet18.pt"

echo "== compress inspect (first and last rows)"
"$cli" inspect "$model" --input-shape 1,3,224,224 > "$work/resnet18.inspect.txt"
head -n 6 "$work/resnet18.inspect.txt"
echo "   ..."
tail -n 4 "$work/resnet18.inspect.txt"

echo "== compress convert: round trip through the IR"
"$cli" convert "$model" -o "$work/resnet18.roundtrip.pt"
"$cli" compare "$model" "$work/resnet18.roundtrip.pt" --input-shape 1,3,224,224

echo "== compress convert --fold-bn"
"$cli" convert "$model" -o "$work/resnet18.folded.pt" --fold-bn
"$cli" compare "$model" "$work/resnet18.folded.pt" --input-shape 1,3,224,224
"$cli" inspect "$work/resnet18.folded.pt" --input-shape 1,3,224,224 | tail -n 2
echo "== outputs in $work"
