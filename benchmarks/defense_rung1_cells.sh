#!/bin/bash
# Rung-1 TALLRec defense cells, one (dataset, trigger, position) after another, each with every stage cached, so an
# interrupted queue resumes where it stopped. Usage (from the repository root, RECBACKDOOR_DATA set):
#   bash benchmarks/defense_rung1_cells.sh "steam char end" "steam word end" "lastfm word random"
# Each cell: runs/defense_tallrec_<dataset>_<trigger>_<position>/{results.json,tables.md,*.png}; ≈ 1 h on one core
# plus ≈ 10 min per victim not yet trained. Copy a finished cell to docs/results/defense_tallrec_<dataset>_rung1_<t>_<p>/
# and rebuild the summary: python benchmarks/defense_rung1_summary.py --out docs/results/defense_tallrec_rung1_summary
set -u
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for cell in "$@"; do
  read -r dataset trigger position <<< "$cell"
  echo "=== $dataset $trigger-$position $(date)"
  nice -n 5 recbackdoor run "configs/small/defense_tallrec_$dataset.toml" --only "trigger=$trigger" \
      --only "position=$position" --out "runs/defense_tallrec_${dataset}_${trigger}_${position}"
  echo "=== done $dataset $trigger-$position rc=$? $(date)"
done
