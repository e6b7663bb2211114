#!/usr/bin/env bash
# The checks that need a GPU, as one script (run from the repository root on
# a machine with CUDA and the virtual environment of `make`): a two-process
# torchrun training run with NCCL in --debug on a small demo corpus, export
# and verify of its model, and scoring speed on cuda at 1M, 10M and 100M
# trials. Prints the card's name first; writes everything under OUT.
set -euo pipefail
OUT=${OUT:-results/gpu_check}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
# A demo corpus made elsewhere (CORPUS=...) where espeak-ng is missing.
CORPUS=${CORPUS:-$OUT/corpus}
[ -d "$CORPUS/wavs" ] || "$PY" -m emotion_invariant.data.synth \
    --out "$CORPUS" --speakers 8 --jobs 8
NPROC=$(nvidia-smi -L | wc -l); NPROC=$(( NPROC < 2 ? NPROC : 2 ))
/usr/bin/time -f "torchrun: %e s" "$(dirname "$PY")/torchrun" \
    --nproc_per_node="$NPROC" recipes/speaker_verification/train.py \
    hparams/speaker_verification/ecapa_emotion_invariant.yaml \
    --distributed_backend=nccl --device=cuda:0 --debug \
    --data_folder="$CORPUS" --output_folder="$OUT/sv"
"$PY" -m emotion_invariant.models.export "$OUT/sv" "$OUT/model" --checkpoint last
first=$(find "$CORPUS/wavs" -name '*.wav' | sort | head -2)
"$PY" -m emotion_invariant.scoring.verify $first --model "$OUT/model" --threshold 0.5
for trials in 1000000 10000000 100000000; do
    "$PY" benchmarks/scoring.py --device cuda --trials "$trials" \
        --metric-scores "$trials" | tee "$OUT/scoring_$trials.txt"
done
