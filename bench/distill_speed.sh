#!/usr/bin/env bash
# Training speed of distillation, side by side: per round, a student epoch
# trained alone, a distillation epoch running the teacher at every step, and
# a distillation epoch with the teacher's logits cached (one fill pass over
# the data first), one after another so that all three see the same load.
# Prints a Markdown table of train_seconds / teacher_seconds (--json).
#   bash bench/distill_speed.sh                      (needs a build: scripts/build.sh)
#   TEACHER=t.pt LIMIT=60000 ROUNDS=3 bash bench/distill_speed.sh
#   CLI=/prefix/bin/compress bash bench/distill_speed.sh   (another build)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cli="${CLI:-$root/build/bin/compress}"
teacher="${TEACHER:-/work/main/out/resnet-baseline.pt}"
student="${STUDENT:---arch cnn --width 0.5}"
limit="${LIMIT:-60000}"   # training samples per epoch
rounds="${ROUNDS:-2}"
threads="${THREADS:-1}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
common="--epochs 1 --limit $limit --threads $threads --data fashion-mnist --json"
echo "teacher $teacher, student $student, $limit samples, 1 epoch, $threads thread(s); $(lscpu | sed -n 's/^Model name: *//p')"
echo
echo "| round | student alone | distill, teacher every step | of which teacher forward | added by distillation | added / teacher forward | distill, cached | cache fill pass |"
echo "|---|---|---|---|---|---|---|---|"
for r in $(seq 1 "$rounds"); do
  # shellcheck disable=SC2086
  alone=$("$cli" train $student $common -o "$work/alone.pt" | jq .train_seconds)
  # shellcheck disable=SC2086
  live=$("$cli" distill --teacher "$teacher" $student $common --cache-teacher off -o "$work/live.pt")
  # shellcheck disable=SC2086
  cached=$("$cli" distill --teacher "$teacher" $student $common --cache-teacher on -o "$work/cached.pt")
  live_s=$(jq .train_seconds <<< "$live"); live_t=$(jq .teacher_seconds <<< "$live")
  cached_s=$(jq .train_seconds <<< "$cached"); fill_t=$(jq .teacher_seconds <<< "$cached")
  awk -v r="$r" -v a="$alone" -v l="$live_s" -v t="$live_t" -v c="$cached_s" -v f="$fill_t" 'BEGIN {
    printf "| %d | %.1f s | %.1f s | %.1f s | %.1f s | %.2f | %.1f s | %.1f s |\n", r, a, l, t, l - a, (l - a) / t, c, f }'
done
