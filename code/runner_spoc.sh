#!/usr/bin/env bash
# Experiment 3 of PAPER.md: full-program pseudocode-to-code on SPoC, TestP (unseen problems, OOD)
# and TestW (unseen annotators, ID), with a denoiser trained on DrRepair-style corrupted code.
#
#   bash code/runner_spoc.sh                                # cpu preset, main table, seed 0
#   PRESET=paper SEEDS="0 1 2" bash code/runner_spoc.sh     # the paper's settings (GPU)
#   TARGETS="main init" bash code/runner_spoc.sh            # + Composed from Direct
#
# Data: data/spoc when it holds the official release (scripts/get_spoc.sh fetches it when online),
# else ../shared/data/spoc with spoc-train-eval as train and spoc-train-test as validation; every
# table prints which. The same stages as SansType (composed_ft/code/stages.py) run on the data set
# written by `make-spoc`, with SPoC's preset tables (--experiment spoc, composed_ft/code/presets.py);
# finished runs are skipped, killed runs resume; the denoiser is trained once (seed 0) and shared by
# the predictor seeds. Table: results/spoc.md (or $TABLE).
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- what to run --------------------------------------------------------------------------
PRESET=${PRESET:-cpu}              # smoke | cpu | paper: fills the defaults of every stage
SEEDS=${SEEDS:-0}
TARGETS=${TARGETS:-main}           # main init | all
DEVICE=${DEVICE:-auto}
RUNS=${RUNS:-runs/spoc/$PRESET}
TABLE=${TABLE:-results/spoc.md}
PY=${PY:-python}
SPOC_DIR=${SPOC_DIR:-}             # SPoC release (empty: data/spoc, falling back to ../shared/data/spoc)
DATA=${DATA:-data/spoc_ft/$PRESET}

# ---- overrides: empty = the preset's value ---------------------------------------------------
# (composed_ft/code/presets.py; `python -m composed_ft.code presets --experiment spoc` prints them)
# data
COPIES=${COPIES:-}                 # failing corrupted copies per unlabeled program (cpu 2, paper 100)
N_TRAIN=${N_TRAIN:-}               # labeled programs (0: all) (cpu 0, paper 0)
N_VAL=${N_VAL:-}                   # validation programs (0: all) (cpu 0, paper 0)
N_UNLABELED=${N_UNLABELED:-}       # unlabeled programs to corrupt (0: all) (cpu 0, paper 0)
N_EVAL=${N_EVAL:-}                 # programs evaluated per test split (0: all TestP/TestW) (cpu 100, paper 0)
VOCAB_SIZE=${VOCAB_SIZE:-}         # SentencePiece BPE shared by pseudocode and code (cpu 4000, paper 10000)
# models and optimization (PAPER.md, Experiment 3)
ARCH=${ARCH:-}                     # named sizes (spoc-paper: the paper's 5+5 layers) (cpu cpu, paper spoc-paper)
POSITIONS=${POSITIONS:-}           # learned positions: generation must be able to pass the longest gold program (cpu 2048, paper 2048)
MAX_TOKENS=${MAX_TOKENS:-}         # tokens per batch (cpu 6000, paper 4000)
UPDATE_FREQ=${UPDATE_FREQ:-}       # batches per update (cpu 1, paper 4)
WEIGHT_DECAY=${WEIGHT_DECAY:-}     # (cpu 0.0001, paper 0.0001)
LR_SCHEDULER=${LR_SCHEDULER:-}     # every stage (cpu inverse_sqrt, paper inverse_sqrt)
BEAM=${BEAM:-}                     # beam width of the evaluation (0: greedy) (cpu 0, paper 0)
# denoiser Π
DEN_DROPOUT=${DEN_DROPOUT:-}       # (cpu 0.1, paper 0.4)
DEN_LR=${DEN_LR:-}                 # (cpu 0.001, paper 0.001)
DEN_WARMUP=${DEN_WARMUP:-}         # warmup updates (cpu 100, paper 4000)
DEN_EPOCHS=${DEN_EPOCHS:-}         # (cpu 12, paper 20)
DEN_N_VALID=${DEN_N_VALID:-}       # corrupted validation pairs (0: all) (cpu 500, paper 0)
LINE_EPOCHS=${LINE_EPOCHS:-}       # optional line-wise pre-training of Π (0: off): changed lines ± LINE_CONTEXT (cpu 0, paper 0)
LINE_CONTEXT=${LINE_CONTEXT:-}     # lines of context around a changed line (cpu 1, paper 1)
# Direct and Pretrained
DROPOUT=${DROPOUT:-}               # the predictors' (Composed too) (cpu 0.2, paper 0.4)
LABEL_SMOOTHING=${LABEL_SMOOTHING:-}  # this, then LS_AFTER from LS_SWITCH_EPOCH (0: one stage) (cpu 0.1, paper 0.2)
LS_SWITCH_EPOCH=${LS_SWITCH_EPOCH:-} # (cpu 0, paper 150)
LS_AFTER=${LS_AFTER:-}             # (cpu 0.1, paper 0.1)
LR=${LR:-}                         # Direct's and Pretrained's (cpu 0.002, paper 0.001)
WARMUP=${WARMUP:-}                 # Direct's and Pretrained's warmup updates (cpu 200, paper 4000)
DIRECT_EPOCHS=${DIRECT_EPOCHS:-}   # (cpu 24, paper 300)
PRE_EPOCHS=${PRE_EPOCHS:-}         # (cpu 16, paper 300)
# Composed
COMP_LR=${COMP_LR:-}               # (cpu 0.0001, paper 0.0001)
COMP_WARMUP=${COMP_WARMUP:-}       # (cpu 100, paper 2000)
COMP_EPOCHS=${COMP_EPOCHS:-}       # (cpu 2, paper 20)
LAM=${LAM:-}                       # λ of the CE term (cpu 1, paper 1)
# flags added last to every training stage's command line (they win over the above), e.g. the paper-size
# dry run's caps: STAGE_FLAGS="--max-update 2 --n-valid 16" (scripts/paper_dry_run.py)
STAGE_FLAGS=${STAGE_FLAGS:-}

CODE="$PY -m composed_ft.code"
opt() { [[ -n "$2" ]] && echo "$1 $2" || true; }   # a flag only when its value is set (never fails under set -e)
COMMON="--experiment spoc --preset $PRESET --data $DATA --device $DEVICE $(opt --vocab-size "$VOCAB_SIZE")
        $(opt --arch "$ARCH") $(opt --max-positions "$POSITIONS") $(opt --max-tokens "$MAX_TOKENS")
        $(opt --update-freq "$UPDATE_FREQ") $(opt --weight-decay "$WEIGHT_DECAY") $(opt --lr-scheduler "$LR_SCHEDULER")
        $(opt --beam "$BEAM") $(opt --n-eval "$N_EVAL")"
DEN_FLAGS="$(opt --dropout "$DEN_DROPOUT") $(opt --lr "$DEN_LR") $(opt --warmup-updates "$DEN_WARMUP")
           $(opt --n-valid "$DEN_N_VALID")"
F_FLAGS="$(opt --dropout "$DROPOUT") $(opt --label-smoothing "$LABEL_SMOOTHING")
         $(opt --ls-switch-epoch "$LS_SWITCH_EPOCH") $(opt --ls-after "$LS_AFTER") $(opt --lr "$LR")
         $(opt --warmup-updates "$WARMUP")"
COMP_FLAGS="$(opt --dropout "$DROPOUT") $(opt --lam "$LAM") $(opt --lr "$COMP_LR")
            $(opt --warmup-updates "$COMP_WARMUP") $(opt --max-epoch "$COMP_EPOCHS")"

if [[ ! -f "$DATA/dataset.json" ]]; then
    $CODE make-spoc --preset "$PRESET" --out "$DATA" $(opt --copies "$COPIES") $(opt --n-train "$N_TRAIN") \
        $(opt --n-val "$N_VAL") $(opt --n-unlabeled "$N_UNLABELED") $(opt --spoc-dir "$SPOC_DIR")
fi
# the gold ceiling beside every table (the gold programs through the same judge)
if [[ ! -f "$RUNS/gold_ceiling/spoc_summary.json" ]]; then
    $CODE gold-ceiling --dataset spoc --preset "$PRESET" --stds gnu++11 --out "$RUNS/gold_ceiling" \
        $(opt --limit "$N_EVAL") $(opt --data "$SPOC_DIR")
fi

# the line-wise stage (off, doing nothing, unless its epochs are > 0), then the full-program Π, which starts
# from the line-wise one when that run exists
$CODE denoise $COMMON --seed 0 --run-dir "$RUNS/denoisers/lines" --noise given-lines $DEN_FLAGS \
    $(opt --line-context "$LINE_CONTEXT") $(opt --max-epoch "$LINE_EPOCHS") $STAGE_FLAGS
DEN="$RUNS/denoisers/main"
DEN_INIT=""
if [[ -f "$RUNS/denoisers/lines/results.json" ]]; then DEN_INIT="--init $RUNS/denoisers/lines"; fi
$CODE denoise $COMMON --seed 0 --run-dir "$DEN" --noise given $DEN_FLAGS $DEN_INIT $(opt --max-epoch "$DEN_EPOCHS") \
    $STAGE_FLAGS

want() { [[ " $TARGETS " == *" $1 "* || " $TARGETS " == *" all "* ]]; }
stage() {   # stage TAG NAME STAGE SEED [flags]
    local tag=$1 name=$2 st=$3 seed=$4; shift 4
    $CODE "$st" $COMMON --seed "$seed" --tag "$tag" --run-dir "$RUNS/$tag/$name-s$seed" "$@" $STAGE_FLAGS
}
for seed in $SEEDS; do
    if want main || want init; then
        stage main direct direct "$seed" --denoiser "$DEN" $F_FLAGS $(opt --max-epoch "$DIRECT_EPOCHS")
    fi
    if want main; then
        stage main pretrain pretrain "$seed" --init "$DEN" --denoiser "$DEN" $F_FLAGS $(opt --max-epoch "$PRE_EPOCHS")
        stage main composed compose "$seed" --init "$RUNS/main/pretrain-s$seed" --denoiser "$DEN" $COMP_FLAGS
    fi
    if want init; then   # Composed from Direct (compare with the main Composed from Pretrained)
        stage ablation-init composed-from-direct compose "$seed" --init "$RUNS/main/direct-s$seed" --denoiser "$DEN" \
            $COMP_FLAGS
    fi
done

$CODE table --runs "$RUNS" --out "$TABLE"
