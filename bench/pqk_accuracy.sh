#!/usr/bin/env bash
# PQK against prune-then-QAT on one trained model at 50% of the MACs, the
# same 1 + 1 student epochs everywhere (EPOCHS=2: 2 + 2) (docs/distillation.md, "PQK on the
# zoo resnet"). One run at a time, one thread; each run's report and log
# stay in OUT; a Markdown row per run at the end (full 10,000-image test set).
# The ten default runs took 80 minutes on the loaded 2-vCPU machine.
#   bash bench/pqk_accuracy.sh                                  (the default runs below)
#   RUNS="pqk-input:0 ptq:1" OUT=out/pqk MODEL=m.pt bash bench/pqk_accuracy.sh
# A run is KIND:SEED. KIND:
#   ptq            compress prune (1 epoch fine-tuning) then compress qat (1 epoch): no distillation
#   pqk-input      compress pqk --teacher input (the float model as given teaches phase 2)
#   pqk-input-ce   the same with --alpha 0: phase 2 on cross-entropy alone (what KD adds)
#   pqk-both       pqk-input with --phase1-kd: phase 1 distils from the input model too
#   pqk-oneshot    pqk-input with --prune-steps 1: every mask before training, a whole epoch at the final width
#   pqk-restored   compress pqk with the paper's teacher (restored, repaired; the KD gate decides)
#   pqk-nogate     compress pqk with the restored teacher and --no-kd-gate
#   phase1         compress pqk --epochs 2 --finetune-epochs 0: both epochs in phase 1, no phase 2
#   pqk-float      pqk-input with --phase1-float: phase 1 in float (batch norms re-estimated after the removal,
#                  20 batches as ptq's), fake quantization only in phase 2
#   pqk-float-ce   pqk-float with --alpha 0: phase 2 on cross-entropy alone
#   pqk-float-both pqk-float with --phase1-kd: the float phase 1 distils from the input model too
#   pqk-float-oneshot pqk-float with --prune-steps 1: every mask before training, phase 1 a whole float epoch
#                  at the final widths (prune-then-QAT's float epoch, with KD in phase 2)
#   pqk-float-both-oneshot  pqk-float-both with --prune-steps 1: KD in both phases, phase 1 at the final widths
#   pqk-float-both-oneshot-lr5  pqk-float-both-oneshot with --finetune-lr 0.005 (phase 2 at compress qat's rate)
#   pqk-float-oneshot-ce    pqk-float-oneshot with --alpha 0: no distillation anywhere, prune-then-QAT inside
#                  compress pqk (pqk-float-oneshot and pqk-float-both-oneshot but for KD)
# EPOCHS=E (default 1) gives every pipeline E + E student epochs (ptq: E of float fine-tuning, E of QAT;
# phase1: 2E in phase 1); run names get "-eE" when E is not 1.
# KD settings of every PQK run: T = 2, alpha = 0.5 (the best of the KD table).
# The issue-12 PQK rows (docs/distillation.md, "phase 1 in float"), about 30 minutes on a quiet machine:
#   RUNS="ptq:0 ptq:1 pqk-float-both-oneshot:0 pqk-float-both-oneshot:1 pqk-float-oneshot-ce:0 pqk-float-oneshot-ce:1"
# Bash reads a script while it runs it: copy this file and run the copy if you edit it during a run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cli="${CLI:-$root/build/bin/compress}"
model="${MODEL:-/work/main/out/resnet-baseline.pt}"
out="${OUT:-$root/out/pqk-resnet}"
epochs="${EPOCHS:-1}"
runs="${RUNS:-ptq:0 ptq:1 pqk-input:0 pqk-input:1 pqk-input-ce:0 pqk-input-ce:1 pqk-restored:0 pqk-both:0 phase1:0 pqk-oneshot:0}"
export OMP_NUM_THREADS=1
mkdir -p "$out"
common=(--data fashion-mnist --threads 1)
pqk=(--target-macs 0.5 --temperature 2 --alpha 0.5 --epochs "$epochs" --finetune-epochs "$epochs")
echo "$(date -u '+%F %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc --all) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $runs; do
  IFS=: read -r kind seed <<< "$run"
  name="$kind-s$seed"
  [ "$epochs" = 1 ] || name="$kind-e$epochs-s$seed"
  log="$out/$name.log"
  echo "$(date -u '+%H:%M:%S') start $name (load $(cut -d' ' -f1-3 /proc/loadavg))"
  start=$(date +%s)
  case "$kind" in
    ptq)
      "$cli" prune "$model" -o "$out/$name.half.pt" --input-shape 1,1,28,28 --target-macs 0.5 --criterion l1 \
        --recalibrate-bn 20 --finetune-epochs "$epochs" --seed "$seed" --report "$out/$name.prune.json" "${common[@]}" > "$log" 2>&1
      "$cli" qat "$out/$name.half.pt" -o "$out/$name.int8.pt" --epochs "$epochs" --seed "$seed" --report "$out/$name.json" \
        "${common[@]}" >> "$log" 2>&1 ;;
    pqk-input)    "$cli" pqk "$model" -o "$out/$name.int8.pt" "${pqk[@]}" --teacher input --latency --seed "$seed" \
                    --report "$out/$name.json" "${common[@]}" > "$log" 2>&1 ;;
    pqk-input-ce) "$cli" pqk "$model" -o "$out/$name.int8.pt" "${pqk[@]}" --teacher input --alpha 0 --seed "$seed" \
                    --report "$out/$name.json" "${common[@]}" > "$log" 2>&1 ;;
    pqk-both)     "$cli" pqk "$model" -o "$out/$name.int8.pt" "${pqk[@]}" --teacher input --phase1-kd --latency \
                    --seed "$seed" --report "$out/$name.json" "${common[@]}" > "$log" 2>&1 ;;
    pqk-oneshot)  "$cli" pqk "$model" -o "$out/$name.int8.pt" "${pqk[@]}" --teacher input --prune-steps 1 --seed "$seed" \
                    --report "$out/$name.json" "${common[@]}" > "$log" 2>&1 ;;
    pqk-restored) "$cli" pqk "$model" -o "$out/$name.int8.pt" "${pqk[@]}" --seed "$seed" \
                    --report "$out/$name.json" "${common[@]}" > "$log" 2>&1 ;;
    pqk-nogate)   "$cli" pqk "$model" -o "$out/$name.int8.pt" "${pqk[@]}" --no-kd-gate --seed "$seed" \
                    --report "$out/$name.json" "${common[@]}" > "$log" 2>&1 ;;
    phase1)       "$cli" pqk "$model" -o "$out/$name.int8.pt" "${pqk[@]}" --epochs $((2 * epochs)) --finetune-epochs 0 --seed "$seed" \
                    --report "$out/$name.json" "${common[@]}" > "$log" 2>&1 ;;
    pqk-float)    "$cli" pqk "$model" -o "$out/$name.int8.pt" "${pqk[@]}" --teacher input --phase1-float --latency \
                    --seed "$seed" --report "$out/$name.json" "${common[@]}" > "$log" 2>&1 ;;
    pqk-float-ce) "$cli" pqk "$model" -o "$out/$name.int8.pt" "${pqk[@]}" --teacher input --phase1-float --alpha 0 \
                    --seed "$seed" --report "$out/$name.json" "${common[@]}" > "$log" 2>&1 ;;
    pqk-float-both) "$cli" pqk "$model" -o "$out/$name.int8.pt" "${pqk[@]}" --teacher input --phase1-float --phase1-kd \
                    --seed "$seed" --report "$out/$name.json" "${common[@]}" > "$log" 2>&1 ;;
    pqk-float-oneshot) "$cli" pqk "$model" -o "$out/$name.int8.pt" "${pqk[@]}" --teacher input --phase1-float \
                    --prune-steps 1 --seed "$seed" --report "$out/$name.json" "${common[@]}" > "$log" 2>&1 ;;
    pqk-float-both-oneshot) "$cli" pqk "$model" -o "$out/$name.int8.pt" "${pqk[@]}" --teacher input --phase1-float \
                    --phase1-kd --prune-steps 1 --seed "$seed" --report "$out/$name.json" "${common[@]}" > "$log" 2>&1 ;;
    pqk-float-oneshot-ce) "$cli" pqk "$model" -o "$out/$name.int8.pt" "${pqk[@]}" --teacher input --phase1-float \
                    --prune-steps 1 --alpha 0 --seed "$seed" --report "$out/$name.json" "${common[@]}" > "$log" 2>&1 ;;
    pqk-float-both-oneshot-lr5) "$cli" pqk "$model" -o "$out/$name.int8.pt" "${pqk[@]}" --teacher input \
                    --phase1-float --phase1-kd --prune-steps 1 --finetune-lr 0.005 --seed "$seed" --report "$out/$name.json" \
                    "${common[@]}" > "$log" 2>&1 ;;
    *) echo "unknown run kind $kind" >&2; exit 2 ;;
  esac
  echo "$(date -u '+%H:%M:%S') done $name in $(( $(date +%s) - start )) s (load $(cut -d' ' -f1-3 /proc/loadavg))"
done
echo
echo "| run | INT8 top-1 | phase 1 (float) | teacher (test) | check: teacher / student | KD used | MACs kept |"
echo "|---|---|---|---|---|---|---|"
for f in "$out"/*.json; do
  case "$f" in *.prune.json) continue ;; esac
  jq -r --arg n "$(basename "$f" .json)" \
    'def r: if type == "number" then (. * 100 | round / 100) else . end;
     "| \($n) | \(.test.int8_top1 | r) | \(.test.phase1_float_top1 // "-" | r) | \(.test.teacher_top1 // "-" | r) | \(.check.teacher_top1 // "-" | r) / \(.check.student_top1 // "-" | r) | \(if .training.kd_used == null then "-" else .training.kd_used end) | \(.macs_kept // "-" | r) |"' \
    "$f"
done
