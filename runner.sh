#!/usr/bin/env bash
# Reproduce the paper's experiments end to end: environment, data, training, tables.
#
#   bash runner.sh                                        # cpu preset, imggen + SansType main tables, seed 0
#   PRESET=paper SEEDS="0 1 2" bash runner.sh             # the paper's settings (GPU)
#   EXPERIMENTS="imggen" TARGETS=all bash runner.sh       # every imggen ablation too
#   JOBS=1 bash runner.sh                                 # one stage at a time (CPU default: 2, one thread each)
#
# Every experiment skips finished runs and resumes killed ones, so rerunning after an interruption
# continues where it stopped. Tables are regenerated from the run directories into results/.
set -euo pipefail
cd "$(dirname "$0")"

PRESET=${PRESET:-cpu}            # smoke | cpu | paper
SEEDS=${SEEDS:-0}                # predictor seeds (denoisers are trained once and shared)
EXPERIMENTS=${EXPERIMENTS:-"imggen sanstype"}   # + spoc
DEVICE=${DEVICE:-auto}           # auto | cpu | cuda
THREADS=${THREADS:-}             # torch/OpenMP threads; 1 on a CPU shared with other jobs
SIDE_BY_SIDE=${SIDE_BY_SIDE:-0}  # 1: the experiments at once, one thread each (below)

source scripts/setup_env.sh      # creates/uses .venv, installs what is missing, sets $PY
export PY PRESET SEEDS DEVICE
[[ -n "$THREADS" ]] && export OMP_NUM_THREADS=$THREADS

# SIDE_BY_SIDE=1: several experiments at once, one thread each (JOBS of them: scripts/jobs.sh), each
# runner's stages one at a time, output in runs/logs/EXPERIMENT.log. Not the default: at the cpu preset it was
# not measurably faster (the longer lane leaves a core idle at the end; results/NOTES.md). Default: one
# experiment after another, each runner scheduling its own stages two at a time (JOBS).
JOBS_NAME=runner.sh JOBS_LOGS=runs/logs
source scripts/jobs.sh
lanes=$JOBS
[[ $SIDE_BY_SIDE == 1 ]] && (( $(wc -w <<< "$EXPERIMENTS") >= 2 )) || lanes=1
experiment() {
    local exp=$1 start runner
    start=$(date +%s)
    case $exp in
        imggen)   runner=imggen/runner.sh ;;
        sanstype) runner=code/runner.sh ;;
        spoc)     runner=code/runner_spoc.sh ;;
        *) echo "runner.sh: unknown experiment '$exp' (imggen, sanstype, spoc)" >&2; return 2 ;;
    esac
    if [[ ! -f $runner ]]; then echo "runner.sh: $exp is not implemented yet ($runner missing); skipped" >&2; return 0; fi
    if (( lanes > 1 )); then JOBS=1 bash "$runner"; else bash "$runner"; fi
    echo "runner.sh: $exp finished in $(( ($(date +%s) - start) / 60 )) min"
}
for exp in $EXPERIMENTS; do
    if (( lanes > 1 )); then job "$exp" experiment "$exp"; else experiment "$exp"; fi
done
barrier
# the report: every experiment's tables, claims vs our gains, figures, provenance. runs/ (checkpoints) is
# not committed, so the small records of every finished run are first copied to results/runs/ (committed),
# and the report is built from there: it keeps runs of earlier sessions and can be rebuilt anywhere.
"$PY" scripts/archive_runs.py --runs runs --out results/runs
"$PY" scripts/make_report.py --runs results/runs --preset "$PRESET" --out results/REPORT.md
