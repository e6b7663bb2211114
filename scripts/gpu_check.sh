#!/usr/bin/env bash
# The checks that need a GPU, as one script (run from the repository root on
# a machine with CUDA and the virtual environment of `make`): a torchrun
# training run of one epoch with NCCL (a process a GPU, at most two) on a
# small demo corpus, export and verify of its model, and scoring speed on
# cuda at 1M, 10M and 100M trials. Prints the card's name first; writes
# everything under OUT. Arguments are added to the training command.
#
# STEPS names the steps to run (default: train export verify scoring), so
# that one failed step can be run again alone. GPU_CHECK_DEVICE=cpu runs
# them on the CPU (gloo, NPROC processes, default 1; no nvidia-smi), as
# tests/test_gpu_check.py does with a tiny corpus, a tiny model (arguments)
# and small scoring runs (TRIALS, BENCH_ARGS), so that the script is proven
# before a GPU minute is spent on it.
set -euo pipefail
OUT=${OUT:-results/gpu_check}
PY=${PY:-.venv/bin/python}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
STEPS=" ${STEPS:-train export verify scoring} "
TRIALS=${TRIALS:-1000000 10000000 100000000}
BENCH_ARGS=${BENCH_ARGS:-}
step() { [[ $STEPS == *" $1 "* ]]; }
case "$DEVICE" in
cuda)
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
    GPUS=$(nvidia-smi -L | wc -l)
    NPROC=${NPROC:-$(( GPUS < 2 ? GPUS : 2 ))}
    # No --device: SpeechBrain gives each process the GPU of its LOCAL_RANK
    # (--device=cuda:0 would put both on the first card).
    DDP=(--distributed_backend=nccl)
    ;;
cpu)
    NPROC=${NPROC:-1}
    DDP=(--distributed_backend=gloo --device=cpu)
    ;;
*)
    echo "error: GPU_CHECK_DEVICE=$DEVICE; expected cuda or cpu" >&2
    exit 2
    ;;
esac
mkdir -p "$OUT"
# A demo corpus made elsewhere (CORPUS=...) where espeak-ng is missing.
CORPUS=${CORPUS:-$OUT/corpus}
if step train || step verify; then
    [ -d "$CORPUS/wavs" ] || "$PY" -m emotion_invariant.corpora.synth \
        --out "$CORPUS" --speakers 8 --jobs 8
fi
if step train; then
    # One epoch, not --debug: a debug run keeps no checkpoint to export.
    TIMEFORMAT="torchrun: %R s"
    time "$PY" -m torch.distributed.run \
        --standalone --nproc_per_node="$NPROC" \
        recipes/speaker_verification/train.py \
        hparams/speaker_verification/ecapa_emotion_invariant.yaml \
        "${DDP[@]}" --number_of_epochs=1 \
        --data_folder="$CORPUS" --output_folder="$OUT/sv" "$@"
fi
if step export; then
    "$PY" -m emotion_invariant.models.export "$OUT/sv" "$OUT/model" \
        --checkpoint last
fi
if step verify; then
    mapfile -t first < <(find "$CORPUS/wavs" -name '*.wav' | sort | head -2)
    "$PY" -m emotion_invariant.scoring.verify "${first[@]}" \
        --model "$OUT/model" --threshold 0.5 --device "$DEVICE"
fi
if step scoring; then
    for trials in $TRIALS; do
        # shellcheck disable=SC2086  # BENCH_ARGS: flags, split on spaces
        "$PY" benchmarks/scoring.py --device "$DEVICE" --trials "$trials" \
            --metric-scores "$trials" $BENCH_ARGS \
            | tee "$OUT/scoring_$trials.txt"
    done
fi
