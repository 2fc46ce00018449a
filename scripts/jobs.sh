# Sourced by the experiment runners: independent stages side by side, one thread each.
#
#   JOBS_NAME=code/runner.sh JOBS_LOGS=$RUNS/logs; source scripts/jobs.sh
#   job NAME FUNCTION ARGS...   # a stage now (JOBS=1), or in the background beside JOBS-1 others, one
#                               # thread each, its output in $JOBS_LOGS/NAME.log
#   barrier                     # wait for them all; a failed stage stops the runner with its name
#
# Stages started between two barriers must not depend on each other. JOBS defaults to 2 for the CPU presets
# on >= 2 cores (two 1-thread stages do more work than one 2-thread stage on 2 cores: results/NOTES.md), to
# 1 with OMP_NUM_THREADS set (a shared machine) or the paper preset (a GPU runs one stage at a time).
JOBS_DEFAULT=1
[[ ${PRESET:-cpu} != paper && -z ${OMP_NUM_THREADS:-} ]] && (( $(nproc) >= 2 )) && JOBS_DEFAULT=2
JOBS=${JOBS:-$JOBS_DEFAULT}
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || { echo "$JOBS_NAME: JOBS must be 1 or more, not '$JOBS'" >&2; exit 2; }

PIDS=() NAMES=()
job() {
    local name=$1; shift
    if (( JOBS <= 1 )); then "$@"; return; fi
    (( ${#PIDS[@]} < JOBS )) || wait_first
    mkdir -p "$JOBS_LOGS"
    echo "$JOBS_NAME: $name started (log: $JOBS_LOGS/$name.log)"
    ( export OMP_NUM_THREADS=1; "$@" ) > "$JOBS_LOGS/$name.log" 2>&1 &
    PIDS+=($!) NAMES+=("$name")
}
wait_first() {
    if ! wait "${PIDS[0]}"; then
        echo "$JOBS_NAME: stage ${NAMES[0]} failed (its log: $JOBS_LOGS/${NAMES[0]}.log)" >&2
        exit 1
    fi
    echo "$JOBS_NAME: ${NAMES[0]} finished"
    PIDS=("${PIDS[@]:1}") NAMES=("${NAMES[@]:1}")
}
barrier() { while (( ${#PIDS[@]} )); do wait_first; done; }
