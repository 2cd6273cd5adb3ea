#!/bin/bash
# LLaRA defense cells (paper Tables 2 / 4 / 5 in shape), one (trigger, position) after another on MovieLens-100K at
# the rung-2 setting, every model and defense row cached, so an interrupted queue resumes where it stopped (a model in
# training resumes from its last 5-minute checkpoint). Usage (from the repository root, RECBACKDOOR_DATA set):
#   bash benchmarks/defense_llara_cells.sh "char end" "word end" "sentence end" "char random" ...
# Cost on one shared core (measured 2026-12-02): the benign model ≈ 85 min (563 LoRA steps), each poisoned model
# ≈ 2 h (804 steps), ≈ 1 h of generation-bound defenses per cell, a train-time model where its cleaned data are new.
# Each cell: runs/defense_llara_ml100k_<trigger>_<position>/{results.json,tables.md,*.png}; copy a finished cell to
# docs/results/defense_llara_ml100k_<trigger>_<position>/.
set -u
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for cell in "$@"; do
  read -r trigger position <<< "$cell"
  echo "=== llara $trigger-$position $(date)"
  nice -n 5 recbackdoor run configs/small/defense_llara_ml100k.toml --only "trigger=$trigger" \
      --only "position=$position" --out "runs/defense_llara_ml100k_${trigger}_${position}"
  echo "=== done llara $trigger-$position rc=$? $(date)"
done
