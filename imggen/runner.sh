#!/usr/bin/env bash
# Experiment 1 of PAPER.md: conditional font generation through a frozen U-Net denoiser.
#
#   bash imggen/runner.sh                               # cpu preset, main table, seed 0
#   SEEDS="0 1 2" bash imggen/runner.sh                 # the main table at three seeds
#   PRESET=paper SEEDS="0 1 2" bash imggen/runner.sh    # the paper's settings (GPU)
#   TARGETS="main blur l2" bash imggen/runner.sh        # main table plus two ablations
#   TARGETS=all bash imggen/runner.sh                   # everything
#   JOBS=1 bash imggen/runner.sh                        # one stage at a time, in this terminal
#
# What each target costs at the cpu preset, as measured (dated): results/NOTES.md.
# Finished runs are skipped, killed runs resume from their last checkpoint. The table is
# regenerated from the run directories at the end: results/imggen.md (or $TABLE). Ablations reuse
# the main runs of the same seed as their reference rows (trained first, never twice).
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- what to run --------------------------------------------------------------------------
PRESET=${PRESET:-cpu}              # smoke | cpu | paper: fills the defaults of every stage
SEEDS=${SEEDS:-0}                  # predictor seeds; the denoiser is trained once and shared
TARGETS=${TARGETS:-main}           # main blur l2 unlabeled labeled dropout perturb | all; budget candidates
DEVICE=${DEVICE:-auto}
RUNS=${RUNS:-runs/imggen/$PRESET}
TABLE=${TABLE:-results/imggen.md}
PY=${PY:-python}                   # (PRESETS_PY: the python that answers preset queries, when PY only echoes)
[[ -n "${THREADS:-}" ]] && export OMP_NUM_THREADS=$THREADS   # THREADS=1 on a shared machine
# independent stages side by side, one thread each (scripts/jobs.sh: job, barrier): the main runs once Π
# exists. Default 2 for the cpu and smoke presets on >= 2 cores, 1 with OMP_NUM_THREADS set or PRESET=paper
JOBS_NAME=imggen/runner.sh JOBS_LOGS=$RUNS/logs
source scripts/jobs.sh

# ---- hyperparameters (PAPER.md, Experiment 1): empty = the preset's value --------------------
# (composed_ft/imggen/presets.py; `python -m composed_ft.imggen presets --preset cpu` prints them). Each
# comment ends with the values empty means at the cpu and paper presets, generated from the preset tables
# (`python scripts/runner_settings.py --write`; tests/test_runner_settings.py keeps them in step). Every
# stage logs its resolved settings as one block before it trains.
DATA=${DATA:-data/fonts/fonts32.npz}
DATA_SEED=${DATA_SEED:-0}          # which 100 fonts are labeled, and the train/val/test split
LR=${LR:-}                         # Adam's learning rate, every stage (cpu 0.0002, paper 0.0002)
BATCH=${BATCH:-}                   # batch size, every stage (cpu 256, paper 256)
# denoiser Π
UNET_WIDTH=${UNET_WIDTH:-}         # U-Net base width (cpu 16, paper 64)
UNET_LAYOUT=${UNET_LAYOUT:-}       # authors (conv -> norm -> act) | preact (this project's earlier one) (cpu authors, paper authors)
DEN_UPDATES=${DEN_UPDATES:-}       # denoiser updates (imggen/README's curve) (cpu 4000, paper 0)
DEN_EPOCHS=${DEN_EPOCHS:-}         # or epochs over the unlabeled set, when DEN_UPDATES is unset (cpu 2, paper 2)
BLUR_MAX=${BLUR_MAX:-2}            # blur radius ~ U[0, s] of the main denoiser (it names its run) (cpu 2, paper 2)
# base predictor f and its losses: the authors' by default
# budgets, chosen from the probes' validation curves (imggen/README): a method's budget is its updates
# when set (the same number at every labeled size), else its epochs
EPOCHS=${EPOCHS:-}                 # predictor epochs for both methods (overrides the two below) (cpu 300, paper 1000)
EPOCHS_DIRECT=${EPOCHS_DIRECT:-}   # Direct's epochs (cpu 300, paper 1000)
EPOCHS_COMPOSED=${EPOCHS_COMPOSED:-} # Composed's epochs (its updates win when set) (cpu 300, paper 1000)
UPDATES=${UPDATES:-}               # predictor updates for both methods (overrides the two below, and epochs) (cpu 32000 [composed] / 0 [direct], paper 0)
UPDATES_DIRECT=${UPDATES_DIRECT:-} # Direct's updates (0: its epochs) (cpu 0, paper 0)
UPDATES_COMPOSED=${UPDATES_COMPOSED:-} # Composed's updates (0: its epochs) (cpu 32000, paper 0)
BN_EPS=${BN_EPS:-}                 # f's BatchNorm eps (cpu 0.8, paper 0.8)
L2_SCOPE=${L2_SCOPE:-}             # nonbias (the authors': BatchNorm scales too) | weights (cpu nonbias, paper nonbias)
DROPOUT_DIRECT=${DROPOUT_DIRECT:-} # dropout on f's last two hidden blocks (cpu 0, paper 0)
DROPOUT_COMPOSED=${DROPOUT_COMPOSED:-} # (cpu 0.1, paper 0.1)
L2_DIRECT=${L2_DIRECT:-}           # λ of λ Σ‖W‖² on f (cpu 0, paper 0)
L2_COMPOSED=${L2_COMPOSED:-}       # (cpu 0.0001, paper 0.0001)
# the second Direct baseline: the strongest Direct we could make at the same budget (imggen/README):
# the authors' f (BN eps 0.8, λ 0) with dropout 0.5, found by the dropout ablation; the earlier choice,
# "--bn-eps 1e-5 --dropout 0.1 --l2 0", is archived in results/runs/imggen/cpu-strong-eps1e-5
DIRECT_STRONG=${DIRECT_STRONG:-"--dropout 0.5"}
N_TRAIN_MAIN=${N_TRAIN_MAIN:-"2500 500"}
# how the cpu budgets and the strongest Direct were chosen (not part of `all`; imggen/README.md):
# `budget` trains each main model once (seed 0) for long and the budgets come from its validation
# curve; `candidates` trains Direct variants at 2,500 labels, the best validation MSE is DIRECT_STRONG
PROBE_EPOCHS_DIRECT=${PROBE_EPOCHS_DIRECT:-1000}     # at 2,500 labels; n labels get 2500/n times more
PROBE_EPOCHS_COMPOSED=${PROBE_EPOCHS_COMPOSED:-1000} # (the same number of updates); runs named -e<epochs>
CANDIDATES=${CANDIDATES:-"eps1e-5_do0.1:--bn-eps=1e-5,--dropout=0.1 eps1e-5_do0.2:--bn-eps=1e-5,--dropout=0.2 eps1e-5_do0.1_l2_1e-4:--bn-eps=1e-5,--dropout=0.1,--l2=1e-4 eps0.8_do0.1_l2_1e-4:--dropout=0.1,--l2=1e-4 eps0.8_do0.5:--dropout=0.5"}
# ablations (the main setting is each one's reference row and is not trained again)
ABL_BLUR=${ABL_BLUR:-"0.1 1 4 8"}
ABL_L2=${ABL_L2:-"1e-6 1e-5 1e-4 1e-3 1e-2 1e-1"}
ABL_UNLABELED_FONTS=${ABL_UNLABELED_FONTS:-100}   # compared with all available fonts
ABL_N_TRAIN=${ABL_N_TRAIN:-"500 1500 2500 4500"}
ABL_DROPOUT=${ABL_DROPOUT:-"0.1 0.2 0.3 0.4 0.5"}
ABL_PERTURB=${ABL_PERTURB:-"blur contrast emboss"}
# Composed's updates in every ablation run (0: the main runs' budget). At the cpu preset they are shorter than
# the main runs' (32,000 would make the ablations ~5x longer); each ablation row is then compared with the
# main run's snapshot at the same budget (`train --extend` keeps results_<updates>.json). Empty: a Composed
# budget set above (EPOCHS, UPDATES, ...) when there is one, else the preset's ablation budget.
ABL_UPDATES_COMPOSED=${ABL_UPDATES_COMPOSED:-} # (see above; the preset's ablation budget) (cpu 6000, paper 0)
# flags added last to every stage's command line (they win over the above), e.g. the paper-size dry run's
# cap: STAGE_FLAGS="--max-update 2" (scripts/paper_dry_run.py)
STAGE_FLAGS=${STAGE_FLAGS:-}
# a stage whose run directory holds a run made with other settings is refused, naming each setting; OVERWRITE=1
# moves such a run aside (RUN.replaced-<time>, never deleted) and trains the new settings
OVERWRITE=${OVERWRITE:-0}
# 1: predictor runs made before a budget grew (e.g. an older preset) continue to the new budget from their
# last checkpoint (`train --extend`: the same result as training it from the start) instead of being refused
EXTEND=${EXTEND:-}

opt() { [[ -n "$2" ]] && echo "$1 $2" || true; }   # a flag only when its value is set
COMMON="--preset $PRESET --data $DATA --data-seed $DATA_SEED --device $DEVICE $(opt --lr "$LR") $(opt --batch-size "$BATCH")
        $([[ $OVERWRITE == 1 ]] && echo --overwrite || true)"
F_FLAGS="$(opt --bn-eps "$BN_EPS") $(opt --l2-scope "$L2_SCOPE")"
# budget EPOCHS UPDATES: --max-update when updates are set; epochs alone also lift the preset's update budget.
# A stage's command line carries one budget, never a second one after the user's: a run whose budget is set
# elsewhere (probes, the ablations') gets its budget in BUDGET instead of the method's (see predictor below).
budget() { if [[ -n "$2" ]]; then echo "--max-update $2"; elif [[ -n "$1" ]]; then echo "--max-epoch $1 --max-update 0"; fi; }
DIRECT_BUDGET=$(budget "${EPOCHS:-$EPOCHS_DIRECT}" "${UPDATES:-$UPDATES_DIRECT}")
COMPOSED_BUDGET=$(budget "${EPOCHS:-$EPOCHS_COMPOSED}" "${UPDATES:-$UPDATES_COMPOSED}")
DIRECT_FLAGS="$(opt --dropout "$DROPOUT_DIRECT") $(opt --l2 "$L2_DIRECT")"
COMPOSED_FLAGS="$(opt --dropout "$DROPOUT_COMPOSED") $(opt --l2 "$L2_COMPOSED")"

# ---- data -------------------------------------------------------------------------------
if [[ ! -f "$DATA" ]]; then
    bash scripts/install_fonts.sh
    $PY -m composed_ft.imggen build-fonts --out "$DATA"
fi

# denoiser NAME [flags]: train (or skip, or resume) the denoiser runs/.../denoisers/NAME
denoiser() {
    local name=$1; shift
    $PY -m composed_ft.imggen denoise $COMMON --seed 0 --run-dir "$RUNS/denoisers/$name" \
        $(opt --unet-layout "$UNET_LAYOUT") $(opt --unet-width "$UNET_WIDTH") \
        $(opt --max-update "$DEN_UPDATES") $(opt --max-epoch "$DEN_EPOCHS") "$@" $STAGE_FLAGS
}
# predictor TAG NAME DENOISER [flags]: one run per seed, runs/.../TAG/NAME-sSEED (later flags win); its
# budget: $BUDGET when the caller sets it (BUDGET=... direct ...), else the method's
predictor() {
    local tag=$1 name=$2 den=$3; shift 3
    for seed in $SEEDS; do
        $PY -m composed_ft.imggen train $COMMON --seed "$seed" --tag "$tag" \
            --run-dir "$RUNS/$tag/$name-s$seed" --denoiser "$RUNS/denoisers/$den" $F_FLAGS "$@" $STAGE_FLAGS \
            ${EXTEND:+--extend}
    done
}
direct()   { predictor "$1" "direct-$2" "$3" --method direct --variant authors ${BUDGET-$DIRECT_BUDGET} $DIRECT_FLAGS "${@:4}"; }
strong()   { predictor "$1" "direct_strong-$2" "$3" --method direct --variant strong $DIRECT_BUDGET $DIRECT_FLAGS \
                 $DIRECT_STRONG "${@:4}"; }
composed() { predictor "$1" "composed-$2" "$3" --method composed ${BUDGET-$COMPOSED_BUDGET} $COMPOSED_FLAGS "${@:4}"; }
# an ablation's Composed run: at the ablations' budget
abl_composed() { BUDGET=$ABL_BUDGET composed "$@"; }

# main Composed runs at N labels. When ablations run at a shorter budget (ABL_UPDATES_COMPOSED) and the main
# budget is the preset's, a new main run is trained to the ablation budget first and then continued
# (`--extend`, the same result as one long run) to its own: the results it had at the ablation budget are
# kept (results_<updates>.json) and are the ablation tables' reference row. (A main run trained before,
# without ablations, has no such snapshot: the table then marks its reference row's budget as different.)
composed_main() {
    local n=$1 seed
    if ablations && [[ -n "$ABL_BUDGET" && -z "$COMPOSED_BUDGET" ]]; then
        for seed in $SEEDS; do
            if [[ ! -f "$RUNS/main/composed-n$n-s$seed/config.json" ]]; then
                SEEDS=$seed BUDGET=$ABL_BUDGET composed main "n$n" "$DEN" --n-train "$n"
            fi
        done
        EXTEND=1 composed main "n$n" "$DEN" --n-train "$n"
    else
        composed main "n$n" "$DEN" --n-train "$n"
    fi
}

want() { [[ " $TARGETS " == *" $1 "* || " $TARGETS " == *" all "* ]]; }
same_number() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 == b + 0 && b != "") }'; }   # 1e-4 == 0.0001
only() { [[ " $TARGETS " == *" $1 "* ]]; }   # targets that `all` leaves out
ablations() { local t; for t in all blur l2 unlabeled labeled dropout perturb; do only "$t" && return 0; done; return 1; }
stamp() { echo "[imggen/runner] $(date '+%H:%M:%S') $*" >&2; }
DEN="blur$BLUR_MAX"
T0=$SECONDS
presets() { ${PRESETS_PY:-$PY} -m composed_ft.imggen presets --preset "$PRESET" --get "$1"; }
# the ablations' Composed budget: ABL_UPDATES_COMPOSED when set, else the Composed budget set above (the user's
# value reaches the ablations; none is appended after it), else the preset's ablation budget (0: the main one's)
ABL_BUDGET=$COMPOSED_BUDGET
if ablations; then
    if [[ -n "$ABL_UPDATES_COMPOSED" ]]; then u=$ABL_UPDATES_COMPOSED
    elif [[ -n "$COMPOSED_BUDGET" ]]; then u=0
    else u=$(presets ablation.composed_max_update); fi
    [[ $u == 0 ]] || ABL_BUDGET="--max-update $u"
fi

stamp "denoiser $DEN"
denoiser "$DEN" --perturb blur --blur-max "$BLUR_MAX"

# The main runs: also the reference rows of every ablation, so they run whenever an ablation does. Once Π
# exists they are independent: with JOBS=2 two at a time, one thread each (scripts/jobs.sh), the long
# Composed runs first so that the two lanes end together.
seeded() { local SEEDS=$1; shift; "$@"; }   # seeded SEED FUNCTION ARGS...: one seed of a stage
if want main || ablations; then
    stamp "main: Composed, Direct$(want main && echo ', strongest Direct' || true) at $N_TRAIN_MAIN labels (JOBS=$JOBS)"
    for n in $N_TRAIN_MAIN; do
        for seed in $SEEDS; do job "composed-n$n-s$seed" seeded "$seed" composed_main "$n"; done
    done
    for n in $N_TRAIN_MAIN; do
        for seed in $SEEDS; do
            job "direct-n$n-s$seed" seeded "$seed" direct main "n$n" "$DEN" --n-train "$n"
            if want main; then job "direct_strong-n$n-s$seed" seeded "$seed" strong main "n$n" "$DEN" --n-train "$n"; fi
        done
    done
    barrier
fi
if only budget; then      # long runs of the main models (seed 0 of SEEDS) whose curves set the budgets
    stamp "budget probes"
    for n in $N_TRAIN_MAIN; do
        e=$((PROBE_EPOCHS_DIRECT * 2500 / n))
        SEEDS=${SEEDS%% *} BUDGET="--max-epoch $e --max-update 0" direct budget "n$n-e$e" "$DEN" --n-train "$n"
        e=$((PROBE_EPOCHS_COMPOSED * 2500 / n))
        SEEDS=${SEEDS%% *} BUDGET="--max-epoch $e --max-update 0" composed budget "n$n-e$e" "$DEN" --n-train "$n"
    done
fi
if only candidates; then  # Direct variants for the strongest Direct, at 2,500 labels
    stamp "Direct candidates"
    for c in $CANDIDATES; do   # NAME:--flag=value,--flag=value
        flags=${c#*:}
        SEEDS=${SEEDS%% *} predictor candidates "direct-${c%%:*}" "$DEN" --method direct --variant candidate \
            $DIRECT_BUDGET $DIRECT_FLAGS --n-train 2500 ${flags//,/ }
    done
fi
if want blur; then        # denoiser perturbation strength (s = BLUR_MAX is the main run)
    stamp "ablation blur"
    for s in $ABL_BLUR; do
        if [[ "$s" == "$BLUR_MAX" ]]; then continue; fi
        denoiser "blur$s" --perturb blur --blur-max "$s"
        abl_composed ablation-blur "blur$s" "blur$s"
    done
fi
if want l2; then          # explicit L2 penalty, composed and direct (the main λs are the main runs)
    stamp "ablation l2"
    # the main runs' λ: the preset's (asked from its table, never written here) unless set above
    L2_MAIN_DIRECT=${L2_DIRECT:-$(presets train.direct.l2)}
    L2_MAIN_COMPOSED=${L2_COMPOSED:-$(presets train.composed.l2)}
    for l2 in $ABL_L2; do
        if ! same_number "$l2" "$L2_MAIN_DIRECT"; then direct ablation-l2 "l2_$l2" "$DEN" --l2 "$l2"; fi
        if ! same_number "$l2" "$L2_MAIN_COMPOSED"; then abl_composed ablation-l2 "l2_$l2" "$DEN" --l2 "$l2"; fi
    done
fi
if want unlabeled; then   # how many unlabeled fonts the denoiser sees (all: the main run)
    stamp "ablation unlabeled"
    for k in $ABL_UNLABELED_FONTS; do
        denoiser "fonts$k" --perturb blur --blur-max "$BLUR_MAX" --unlabeled-fonts "$k"
        abl_composed ablation-unlabeled "fonts$k" "fonts$k"
    done
fi
if want labeled; then     # number of labeled examples (the main sizes are the main runs)
    stamp "ablation labeled"
    for n in $ABL_N_TRAIN; do
        if [[ " $N_TRAIN_MAIN " == *" $n "* ]]; then continue; fi
        direct ablation-labeled "n$n" "$DEN" --n-train "$n"
        abl_composed ablation-labeled "n$n" "$DEN" --n-train "$n"
    done
fi
if want dropout; then     # dropout instead of L2 (λ = 0), both methods
    stamp "ablation dropout"
    for d in $ABL_DROPOUT; do
        direct ablation-dropout "do$d" "$DEN" --l2 0 --dropout "$d"
        abl_composed ablation-dropout "do$d" "$DEN" --l2 0 --dropout "$d"
    done
fi
if want perturb; then     # kind of perturbation the denoiser undoes (blur: the main run)
    stamp "ablation perturb"
    for p in $ABL_PERTURB; do
        if [[ $p == blur ]]; then continue; fi
        denoiser "$p" --perturb "$p"
        abl_composed ablation-perturb "$p" "$p"
    done
fi

stamp "done in $(( (SECONDS - T0) / 60 )) min"
$PY -m composed_ft.imggen table --runs "$RUNS" --out "$TABLE"
