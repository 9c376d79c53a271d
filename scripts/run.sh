#!/usr/bin/env bash
# The main job on the embedded default: set up this machine (idempotent),
# build, train the small CNN baseline on Fashion-MNIST (or reuse the one
# trained by an earlier run), evaluate it on the full test set, inspect it,
# round-trip it through the IR and fold its batch norms, checking each
# result against the original.
#   EPOCHS=6 bash scripts/run.sh     (default 2 epochs: a few minutes on 2 cores)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
epochs="${EPOCHS:-2}"
bash "$root/scripts/setup.sh"
echo "== build"
bash "$root/scripts/build.sh" compress_cli | tail -1
cli="$root/build/bin/compress"
work="$root/out"
mkdir -p "$work"
model="$work/cnn-e$epochs.pt"

if [ -f "$model" ]; then
  echo "== reusing $model (trained by an earlier run; delete it to train again)"
else
  echo "== compress train --arch cnn --data fashion-mnist --epochs $epochs"
  "$cli" train --arch cnn --data fashion-mnist --epochs "$epochs" --checkpoint "$work/cnn-e$epochs.ckpt" --resume -o "$model"
fi

echo "== compress eval (full Fashion-MNIST test set, 10,000 images)"
"$cli" eval "$model" --data fashion-mnist

echo "== compress inspect"
"$cli" inspect "$model" --input-shape 1,1,28,28

echo "== compress convert: round trip through the IR"
"$cli" convert "$model" -o "$work/cnn.roundtrip.pt"
"$cli" compare "$model" "$work/cnn.roundtrip.pt" --input-shape 8,1,28,28

echo "== compress convert --fold-bn --strip-dropout, then evaluate the folded model"
"$cli" convert "$model" -o "$work/cnn.folded.pt" --fold-bn --strip-dropout
"$cli" compare "$model" "$work/cnn.folded.pt" --input-shape 8,1,28,28
"$cli" eval "$work/cnn.folded.pt" --data fashion-mnist
echo "== outputs in $work"
