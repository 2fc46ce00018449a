#!/usr/bin/env bash
# Experiment 2 of PAPER.md: pseudocode-to-code on SansType, every method and the ablations.
#
#   bash code/runner.sh                                 # cpu preset, main table, seed 0, the paper's data
#   JOBS=1 bash code/runner.sh                          # one stage at a time, in this terminal
#   PRESET=paper SEEDS="0 1 2" bash code/runner.sh      # the paper's settings (GPU)
#   TARGETS="main noise lam" bash code/runner.sh        # main table plus two ablations
#   TARGETS=all bash code/runner.sh                     # everything
#   VARIANT=strict bash code/runner.sh                  # beyond the paper: the strict variant's table
#
# Data (VARIANT=authors, the default): the paper's benchmark -- the authors' released draw
# (../shared/data/sanstype-1000a: train 1,000 / val 500 / test 500 / ood 500) as labeled data, and
# 20,000 + 500 unlabeled programs from our generator of the authors' distribution (SANSTYPE.md), plus
# large generated test sets (test_gen / ood_gen, N_GEN each) reported beside the released 500.
# VARIANT=strict: this project's harder variant (types always inferable, disjoint OOD phrasings).
# Methods (tag main): Direct, Pretrained (init from Π), Composed from Pretrained as the authors' code runs it
# (the paper's row), "Pretrained, continued" (the control: CE alone in Composed's regime, kept by the same rule
# and by validation CE); target `written`: Composed as the paper writes its equation; target `bt`:
# Backtranslation and Backtranslation + Composed; every one evaluated alone and with Π applied. Ablations: `noise`
# (random-deletion denoiser), `lam` (λ of the CE term), `unlabeled` (number of unlabeled programs
# the denoiser sees), `init` (Composed from Direct vs from Pretrained), `baseline` (beyond the paper, a main row:
# the REINFORCE weights with and without a leave-one-out batch-mean baseline).
# What each target costs at the cpu preset, as measured (dated): results/NOTES.md.
# Finished runs are skipped, killed runs resume from their last checkpoint. Each predictor seed trains its
# own denoiser (DEN_PER_SEED=1), so the ± over seeds includes Π's variation. The table is regenerated
# at the end: results/sanstype.md (or $TABLE).
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- what to run --------------------------------------------------------------------------
PRESET=${PRESET:-cpu}              # smoke | cpu | paper: fills the defaults of every stage
SEEDS=${SEEDS:-0}                  # predictor seeds
TARGETS=${TARGETS:-main}           # main written bt noise lam unlabeled init baseline | all
DEVICE=${DEVICE:-auto}
VARIANT=${VARIANT:-authors}        # authors (the paper's data) | strict (beyond the paper)
case $VARIANT in
    authors) SUFFIX="" ;;
    strict)  SUFFIX="-strict" ;;
    *) echo "code/runner.sh: VARIANT must be authors or strict, not '$VARIANT'" >&2; exit 2 ;;
esac
RUNS=${RUNS:-runs/sanstype$SUFFIX/$PRESET}
TABLE=${TABLE:-results/sanstype$SUFFIX.md}
PY=${PY:-python}

# independent stages side by side, one thread each (scripts/jobs.sh: job, barrier; JOBS=1 one at a time)
JOBS_NAME=code/runner.sh JOBS_LOGS=$RUNS/logs
source scripts/jobs.sh

# ---- data and vocabulary -------------------------------------------------------------------
DATA=${DATA:-data/sanstype-$([[ $VARIANT == authors ]] && echo paper || echo strict)}
RELEASED=${RELEASED:-../shared/data/sanstype-1000a}   # the authors' released draw: labeled splits (authors)
DATA_SEED=${DATA_SEED:-0}          # seed of the unlabeled programs (only used when $DATA does not exist)
N_GEN=${N_GEN:-2000}               # authors: generated test_gen / ood_gen programs each (0: none)
GEN_SEED=${GEN_SEED:-1}            # their own seed
VOCAB_SIZE=${VOCAB_SIZE:-}         # SentencePiece BPE shared by pseudocode and code (cpu 600, paper 600)
DEN_PER_SEED=${DEN_PER_SEED:-$([[ $VARIANT == authors ]] && echo 1 || echo 0)}  # 1: a denoiser per seed

# ---- hyperparameters (PAPER.md, Experiment 2): empty = the preset's value --------------------
# (composed_ft/code/presets.py; `python -m composed_ft.code presets --preset cpu` prints them)
MAX_TOKENS=${MAX_TOKENS:-}         # tokens per batch (cpu 4000 [denoise pretrain compose compose-bt] / 2000 [direct reverse backtranslate], paper 4000)
UPDATE_FREQ=${UPDATE_FREQ:-}       # batches per update (cpu 1 [denoise direct reverse backtranslate] / 4 [pretrain compose compose-bt], paper 4)
WEIGHT_DECAY=${WEIGHT_DECAY:-}     # every stage (cpu 0.0001, paper 0.0001)
LABEL_SMOOTHING=${LABEL_SMOOTHING:-} # every stage (cpu 0, paper 0)
DROPOUT=${DROPOUT:-}               # the predictors' (Direct, Pretrained, Composed, backtranslation) (cpu 0.1, paper 0.1)
BEAM=${BEAM:-}                     # beam width of the evaluation (0: greedy) (cpu 0, paper 0)
LR_SCHEDULER=${LR_SCHEDULER:-}     # the predictors': inverse_sqrt | cosine (cpu inverse_sqrt [pretrain compose compose-bt] / cosine [direct reverse backtranslate], paper inverse_sqrt)
CHECKPOINT_SELECT=${CHECKPOINT_SELECT:-}  # Direct, Pretrained, reverse, backtranslation: best (val NLL) | last (cpu best [pretrain] / last [direct reverse backtranslate], paper best)
                                   # (Composed always keeps its best val NLL_Π)
# denoiser Π
DEN_DROPOUT=${DEN_DROPOUT:-}       # (cpu 0.1, paper 0.4)
DEN_LR=${DEN_LR:-}                 # (cpu 0.001, paper 0.001)
DEN_WARMUP=${DEN_WARMUP:-}         # warmup updates (cpu 500, paper 4000)
DEN_EPOCHS=${DEN_EPOCHS:-}         # (cpu 8, paper 50)
DEN_N_UNLABELED=${DEN_N_UNLABELED:-}  # unlabeled programs (empty: all) (cpu 0, paper 0)
# Direct
DIRECT_LR=${DIRECT_LR:-}           # (cpu 0.002, paper 0.002)
DIRECT_WARMUP=${DIRECT_WARMUP:-}   # (cpu 400, paper 400)
DIRECT_EPOCHS=${DIRECT_EPOCHS:-}   # (cpu 90, paper 500)
# Pretrained (init from Π)
PRE_LR=${PRE_LR:-}                 # (cpu 0.002, paper 0.002)
PRE_WARMUP=${PRE_WARMUP:-}         # (cpu 150, paper 150)
PRE_EPOCHS=${PRE_EPOCHS:-}         # (cpu 120, paper 300)
# Composed
COMP_LR=${COMP_LR:-}               # also Backtranslation + Composed's (compose-bt) (cpu 0.0002 [compose] / 2e-05 [compose-bt], paper 0.0002 [compose] / 2e-05 [compose-bt])
COMP_WARMUP=${COMP_WARMUP:-}       # (cpu 90 [compose] / 3000 [compose-bt], paper 90 [compose] / 3000 [compose-bt])
COMP_EPOCHS=${COMP_EPOCHS:-}       # (cpu 30, paper 300 [compose] / 50 [compose-bt])
LAM=${LAM:-}                       # λ of the CE term (cpu 1, paper 1)
# Backtranslation
REV_EPOCHS=${REV_EPOCHS:-}         # reverse model (cpu 40, paper 500)
BT_EPOCHS=${BT_EPOCHS:-}           # forward model on real + pseudo pairs (cpu 8, paper 300)
BT_N_UNLABELED=${BT_N_UNLABELED:-} # programs to backtranslate (cpu 4000, paper 0)
# ablations
ABL_LAM=${ABL_LAM:-"0.25 4"}
ABL_N_UNLABELED=${ABL_N_UNLABELED:-"1000 5000"}
# flags added last to every training stage's command line (they win over the above), e.g. the paper-size
# dry run's caps: STAGE_FLAGS="--max-update 2 --n-eval 4" (scripts/paper_dry_run.py)
STAGE_FLAGS=${STAGE_FLAGS:-}
# a stage whose run directory holds a run made with other settings is refused, naming each setting; OVERWRITE=1
# moves such a run aside (RUN.replaced-<time>) and trains the new settings
OVERWRITE=${OVERWRITE:-0}

opt() { [[ -n "$2" ]] && echo "$1 $2" || true; }   # a flag only when its value is set
EVAL_SPLITS="test ood"
[[ $VARIANT == authors && $N_GEN != 0 ]] && EVAL_SPLITS="test ood test_gen ood_gen"
# strict keeps the fresh corruption per epoch its archived runs used; authors: one fixed draw, as upstream
NOISE_DRAW=$([[ $VARIANT == authors ]] && echo fixed || echo fresh)
COMMON="--preset $PRESET --data $DATA --device $DEVICE $(opt --vocab-size "$VOCAB_SIZE")
        $(opt --weight-decay "$WEIGHT_DECAY") $(opt --label-smoothing "$LABEL_SMOOTHING") $(opt --beam "$BEAM")
        $(opt --max-tokens "$MAX_TOKENS") $(opt --update-freq "$UPDATE_FREQ") $([[ $OVERWRITE == 1 ]] && echo --overwrite || true)"
CODE="$PY -m composed_ft.code"
SELECT=$(opt --checkpoint-select "$CHECKPOINT_SELECT")   # the predictor stages only

# ---- data -------------------------------------------------------------------------------
if [[ ! -f "$DATA/dataset.json" ]]; then
    if [[ $VARIANT == authors ]]; then
        $CODE make-sanstype --variant authors --labeled-from "$RELEASED" --out "$DATA" --seed "$DATA_SEED" \
            --n-gen "$N_GEN" --gen-seed "$GEN_SEED"
    else
        $CODE make-sanstype --variant strict --out "$DATA" --seed "$DATA_SEED"
    fi
fi

# den NAME SEED: the denoiser run directory a predictor of SEED uses (its own, or the shared seed-0 one)
den() { [[ $DEN_PER_SEED == 1 ]] && echo "$RUNS/denoisers/$1-s$2" || echo "$RUNS/denoisers/$1"; }
# denoiser NAME SEED [flags]: train (or skip, or resume) $(den NAME SEED)
denoiser() {
    local name=$1 seed=$2; shift 2
    [[ $DEN_PER_SEED == 1 ]] || seed=0
    $CODE denoise $COMMON --seed "$seed" --run-dir "$(den "$name" "$seed")" --noise-draw "$NOISE_DRAW" \
        $(opt --dropout "$DEN_DROPOUT") $(opt --lr "$DEN_LR") $(opt --warmup-updates "$DEN_WARMUP") \
        $(opt --max-epoch "$DEN_EPOCHS") $(opt --n-unlabeled "$DEN_N_UNLABELED") "$@" $STAGE_FLAGS
}
# stage TAG NAME STAGE SEED [flags]: runs/.../TAG/NAME-sSEED
stage() {
    local tag=$1 name=$2 st=$3 seed=$4; shift 4
    $CODE "$st" $COMMON --seed "$seed" --tag "$tag" --run-dir "$RUNS/$tag/$name-s$seed" $(opt --dropout "$DROPOUT") \
        --eval-splits $EVAL_SPLITS $(opt --lr-scheduler "$LR_SCHEDULER") "$@" $STAGE_FLAGS
}
# direct TAG SEED [DENOISER]
direct()   { stage "$1" direct direct "$2" --denoiser "$(den "${3:-main}" "$2")" $SELECT \
                 $(opt --lr "$DIRECT_LR") $(opt --warmup-updates "$DIRECT_WARMUP") $(opt --max-epoch "$DIRECT_EPOCHS"); }
# pretrain TAG NAME SEED DENOISER
pretrain() { stage "$1" "$2" pretrain "$3" --init "$(den "$4" "$3")" --denoiser "$(den "$4" "$3")" $SELECT \
                 $(opt --lr "$PRE_LR") $(opt --warmup-updates "$PRE_WARMUP") $(opt --max-epoch "$PRE_EPOCHS"); }
# compose TAG NAME SEED INIT_RUN_DIR DENOISER [flags]
compose()  { local tag=$1 name=$2 seed=$3 init=$4 dn=$5; shift 5
             stage "$tag" "$name" compose "$seed" --init "$init" --denoiser "$(den "$dn" "$seed")" $(opt --lam "$LAM") \
                 $(opt --lr "$COMP_LR") $(opt --warmup-updates "$COMP_WARMUP") $(opt --max-epoch "$COMP_EPOCHS") "$@"; }

want() { [[ " $TARGETS " == *" $1 "* || " $TARGETS " == *" all "* ]]; }

# the control's two rows: its training (selection by NLL_Π of sampled ŷ), then its best-validation-CE checkpoint
continued() {
    local seed=$1
    compose main continued "$seed" "$M/pretrain-s$seed" main --reinforce off
    $CODE evaluate --run-dir "$M/continued-s$seed" --checkpoint best_val_nll --as-run "$M/continued-ce-s$seed" \
        --tag main --denoiser "$(den main "$seed")" --device "$DEVICE"
}

for seed in $SEEDS; do
    M="$RUNS/main"
    denoiser main "$seed" --noise structured
    # the main runs are also the reference rows of the init, lam and baseline ablations, which train only
    # what differs from them (finished runs are skipped, so this costs nothing once main has run)
    if want main || want init || want lam || want baseline || want written; then
        job "pretrain-s$seed" pretrain main pretrain "$seed" main
    fi
    if want main || want init || want noise; then
        job "direct-s$seed" direct main "$seed"
    fi
    barrier  # what follows starts from Pretrained (or Direct)
    if want main || want init || want lam || want baseline || want written; then
        # the paper's row: Composed as the authors' code runs it (the preset: padded log p in eval mode, their
        # regime, selection by NLL_Π of sampled ŷ)
        job "composed-s$seed" compose main composed "$seed" "$M/pretrain-s$seed" main
    fi
    if want main; then
        # the control the paper lacks, "Pretrained, continued": the same start, updates, lr, schedule, batches
        # and selection as Composed, CE only; then its checkpoint of the best validation CE, evaluated as a row
        job "continued-s$seed" continued "$seed"
    fi
    if want written; then  # Composed as the paper writes the equation: log p over each sample's own tokens, dropout on
        job "composed-written-s$seed" compose main composed-written "$seed" "$M/pretrain-s$seed" main \
            --logp-sum masked --logp-mode train
    fi
    if want baseline; then  # beyond the paper: the REINFORCE weights minus the leave-one-out batch mean, a main row
        job "composed-loo-s$seed" compose main composed-loo "$seed" "$M/pretrain-s$seed" main --reinforce-baseline loo
    fi
    barrier
    if want bt; then      # backtranslation: reverse model (code -> pseudocode), forward on real + pseudo pairs
        stage bt reverse direct "$seed" --reverse $SELECT $(opt --lr "$DIRECT_LR") $(opt --max-epoch "$REV_EPOCHS")
        stage bt backtranslate backtranslate "$seed" --reverse-model "$RUNS/bt/reverse-s$seed" \
            --denoiser "$(den main "$seed")" $SELECT $(opt --lr "$DIRECT_LR") $(opt --max-epoch "$BT_EPOCHS") \
            $(opt --n-unlabeled "$BT_N_UNLABELED")
        compose bt composed-bt "$seed" "$RUNS/bt/backtranslate-s$seed" main --preset-table compose-bt
    fi
    if want init; then    # Composed from Direct (the main Composed, from Pretrained, is the reference)
        compose ablation-init composed-from-direct "$seed" "$M/direct-s$seed" main
    fi
    if want lam; then     # λ of the CE term (the main Composed, λ = $LAM, is the reference)
        for lam in $ABL_LAM; do
            LAM=$lam compose ablation-lam "composed-lam$lam" "$seed" "$M/pretrain-s$seed" main
        done
    fi
    if want noise; then   # random token deletion (p = 0.15) instead of the structured corruptions
        denoiser delete "$seed" --noise delete
        # Direct + Π(delete): Π is only applied post hoc, so the main Direct's model is evaluated with it
        # (what retraining the same seed gives, tested; it saved 18 min per seed at the cpu preset)
        $CODE evaluate --run-dir "$M/direct-s$seed" --as-run "$RUNS/ablation-noise/direct-s$seed" \
            --tag ablation-noise --denoiser "$(den delete "$seed")" --device "$DEVICE"
        pretrain ablation-noise pretrain-delete "$seed" delete
        compose ablation-noise composed-delete "$seed" "$RUNS/ablation-noise/pretrain-delete-s$seed" delete
    fi
    if want unlabeled; then   # number of unlabeled programs the denoiser sees
        for k in $ABL_N_UNLABELED; do
            DEN_N_UNLABELED=$k denoiser "unlabeled$k" "$seed" --noise structured
            pretrain ablation-unlabeled "pretrain-u$k" "$seed" "unlabeled$k"
            compose ablation-unlabeled "composed-u$k" "$seed" "$RUNS/ablation-unlabeled/pretrain-u$k-s$seed" "unlabeled$k"
        done
    fi
done

$CODE table --runs "$RUNS" --out "$TABLE"
