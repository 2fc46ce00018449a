#!/usr/bin/env bash
# Experiment 1 of PAPER.md: conditional font generation through a frozen U-Net denoiser.
#
#   bash imggen/runner.sh                               # cpu preset, main table, seed 0
#   PRESET=paper SEEDS="0 1 2" bash imggen/runner.sh    # the paper's settings
#   TARGETS="main blur l2" bash imggen/runner.sh        # main table plus two ablations
#   TARGETS=all bash imggen/runner.sh                   # everything
#
# Finished runs are skipped, killed runs resume from their last checkpoint. The table is
# regenerated from the run directories at the end: results/imggen.md (or $TABLE).
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- what to run --------------------------------------------------------------------------
PRESET=${PRESET:-cpu}              # smoke | cpu | paper: fills the defaults of every stage
SEEDS=${SEEDS:-0}                  # predictor seeds; the denoiser is trained once and shared
TARGETS=${TARGETS:-main}           # main blur l2 unlabeled labeled dropout perturb | all
DEVICE=${DEVICE:-auto}
RUNS=${RUNS:-runs/imggen/$PRESET}
TABLE=${TABLE:-results/imggen.md}
PY=${PY:-python}

# ---- hyperparameters (PAPER.md, Experiment 1); empty = the preset's value ----------------
DATA=${DATA:-data/fonts/fonts32.npz}
DATA_SEED=${DATA_SEED:-0}          # which 100 fonts are labeled, and the train/val/test split
LR=${LR:-2e-4}
BATCH=${BATCH:-}                   # cpu/paper 256
EPOCHS=${EPOCHS:-}                 # predictor epochs (cpu 100, paper 1000)
DEN_EPOCHS=${DEN_EPOCHS:-}         # denoiser epochs over the unlabeled set (2)
UNET_WIDTH=${UNET_WIDTH:-}         # cpu 16, paper 64
BLUR_MAX=${BLUR_MAX:-2}            # blur radius ~ U[0, s]
DROPOUT=${DROPOUT:-0.1}
L2_COMPOSED=${L2_COMPOSED:-1e-4}   # λ of λ Σ‖W‖² on f (composed)
L2_DIRECT=${L2_DIRECT:-0}
N_TRAIN_MAIN=${N_TRAIN_MAIN:-"2500 500"}
# ablations
ABL_BLUR=${ABL_BLUR:-"0.1 1 4 8"}
ABL_L2=${ABL_L2:-"1e-6 1e-5 1e-4 1e-3 1e-2 1e-1"}
ABL_UNLABELED_FONTS=${ABL_UNLABELED_FONTS:-100}   # compared with all available fonts
ABL_N_TRAIN=${ABL_N_TRAIN:-"500 1500 2500 4500"}
ABL_DROPOUT=${ABL_DROPOUT:-"0.1 0.2 0.3 0.4 0.5"}
ABL_PERTURB=${ABL_PERTURB:-"blur contrast emboss"}

opt() { [[ -n "$2" ]] && echo "$1 $2" || true; }   # a flag only when its value is set
COMMON="--preset $PRESET --data $DATA --data-seed $DATA_SEED --device $DEVICE --lr $LR $(opt --batch-size "$BATCH")"

# ---- data -------------------------------------------------------------------------------
if [[ ! -f "$DATA" ]]; then
    bash scripts/install_fonts.sh
    $PY -m composed_ft.imggen build-fonts --out "$DATA"
fi

# denoiser NAME [flags]: train (or skip, or resume) the denoiser runs/.../denoisers/NAME
denoiser() {
    local name=$1; shift
    $PY -m composed_ft.imggen denoise $COMMON --seed 0 --run-dir "$RUNS/denoisers/$name" \
        $(opt --max-epoch "$DEN_EPOCHS") $(opt --unet-width "$UNET_WIDTH") "$@"
}
# predictor TAG NAME DENOISER [flags]: one run per seed, runs/.../TAG/NAME-sSEED
predictor() {
    local tag=$1 name=$2 den=$3; shift 3
    for seed in $SEEDS; do
        $PY -m composed_ft.imggen train $COMMON --seed "$seed" --tag "$tag" \
            --run-dir "$RUNS/$tag/$name-s$seed" --denoiser "$RUNS/denoisers/$den" \
            $(opt --max-epoch "$EPOCHS") "$@"
    done
}
direct()   { predictor "$1" "direct-$2" "$3" --method direct --l2 "$L2_DIRECT" --dropout "$DROPOUT" "${@:4}"; }
composed() { predictor "$1" "composed-$2" "$3" --method composed --l2 "$L2_COMPOSED" --dropout "$DROPOUT" "${@:4}"; }

want() { [[ " $TARGETS " == *" $1 "* || " $TARGETS " == *" all "* ]]; }

denoiser "blur$BLUR_MAX" --perturb blur --blur-max "$BLUR_MAX"

if want main; then
    for n in $N_TRAIN_MAIN; do
        direct main "n$n" "blur$BLUR_MAX" --n-train "$n"
        composed main "n$n" "blur$BLUR_MAX" --n-train "$n"
    done
fi
if want blur; then        # denoiser perturbation strength
    for s in $ABL_BLUR $BLUR_MAX; do
        denoiser "blur$s" --perturb blur --blur-max "$s"
        composed ablation-blur "blur$s" "blur$s"
    done
fi
if want l2; then          # explicit L2 penalty, composed and direct
    for l2 in $ABL_L2; do
        predictor ablation-l2 "direct-l2_$l2" "blur$BLUR_MAX" --method direct --l2 "$l2" --dropout "$DROPOUT"
        predictor ablation-l2 "composed-l2_$l2" "blur$BLUR_MAX" --method composed --l2 "$l2" --dropout "$DROPOUT"
    done
fi
if want unlabeled; then   # how many unlabeled fonts the denoiser sees
    for k in $ABL_UNLABELED_FONTS; do
        denoiser "fonts$k" --perturb blur --blur-max "$BLUR_MAX" --unlabeled-fonts "$k"
        composed ablation-unlabeled "fonts$k" "fonts$k"
    done
    composed ablation-unlabeled "fonts_all" "blur$BLUR_MAX"
fi
if want labeled; then     # number of labeled examples
    for n in $ABL_N_TRAIN; do
        direct ablation-labeled "n$n" "blur$BLUR_MAX" --n-train "$n"
        composed ablation-labeled "n$n" "blur$BLUR_MAX" --n-train "$n"
    done
fi
if want dropout; then     # dropout instead of L2 (λ = 0)
    for d in $ABL_DROPOUT; do
        predictor ablation-dropout "direct-do$d" "blur$BLUR_MAX" --method direct --l2 0 --dropout "$d"
        predictor ablation-dropout "composed-do$d" "blur$BLUR_MAX" --method composed --l2 0 --dropout "$d"
    done
fi
if want perturb; then     # kind of perturbation the denoiser undoes
    for p in $ABL_PERTURB; do
        [[ $p == blur ]] && den="blur$BLUR_MAX" || { den="$p"; denoiser "$p" --perturb "$p"; }
        composed ablation-perturb "$p" "$den"
    done
fi

$PY -m composed_ft.imggen table --runs "$RUNS" --out "$TABLE"
