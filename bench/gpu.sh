#!/usr/bin/env bash
# A GPU run in one shot (issue 17 item 5): on a machine with one NVIDIA GPU, within 8 minutes,
# the forward pass and the end-to-end pipeline (bench/pipeline.py: the local Kafka + Redis
# stack, real `mood-monitor worker` processes) for
#   1. the default model (the packaged MiniLM multi-head), and
#   2. a RoBERTa-base-sized classifier built from a config (random weights, no hub:
#      bench/gpu_models.py build),
# in bf16 with batch sizes for a GPU, then prints per model: posts/s (forward, end to end), the
# share of the GPU's dense bf16 peak (FLOPs per post x posts/s), the forward pass's peak GPU
# memory and the host path's CPU per post (bench/gpu_models.py report).
#
#   bash bench/gpu.sh                 # on the GPU machine (needs .venv with the CUDA torch)
#   SMALL=1 bash bench/gpu.sh         # a proof run on a CPU: a small RoBERTa, few posts
#
# Everything lands in .bench/gpu/ (one log and one JSON line per model). Each model's run is
# bounded (RUN_TIMEOUT_S), so the whole script stays within its budget even when a run hangs.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
SMALL=${SMALL:-0}
# a GPU worker's host path needs librdkafka's client (kafka-python: ~6x the CPU a record)
KAFKA_CLIENT=${KAFKA_CLIENT:-librdkafka}
# the worker's host path in this many processes around the one model (worker.host_processes):
# one Python process feeds ~15,000-24,000 posts/s, a GPU scores more
OUT=${OUT:-.bench/gpu}
mkdir -p "$OUT"

if [[ "$SMALL" == 1 ]]; then
  POSTS=${POSTS:-600}
  PRECISION=${PRECISION:-auto}
  BATCH=(--max-batch 256 --batch-tokens 8192 --token-budget 8192)
  RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-420}
  BUILD_FLAGS=(--small)
  HOST_PROCESSES=${HOST_PROCESSES:-1}
else
  POSTS=${POSTS:-40000}
  PRECISION=${PRECISION:-bf16}
  # a GPU wants big passes: up to 2,048 posts / 131,072 padded tokens a pass
  BATCH=(--max-batch 2048 --batch-tokens 131072 --token-budget 131072 --max-wait-ms 50)
  RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-200}
  BUILD_FLAGS=()
  HOST_PROCESSES=${HOST_PROCESSES:-4}
fi

echo "gpu.sh: $(date -u +%FT%TZ) small=$SMALL posts=$POSTS precision=$PRECISION kafka_client=$KAFKA_CLIENT host_processes=$HOST_PROCESSES"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'

"$PY" bench/gpu_models.py build "$OUT/roberta-base-random" "${BUILD_FLAGS[@]}"

results=()
for model in default "$OUT/roberta-base-random"; do
  name=$(basename "$model")
  echo "gpu.sh: $name ..."
  # one round: forward, then warm workers and an e2e run drained from a backlog (the host
  # path's own rate), a short latency run; no agreement / tutorial baseline (minutes on a CPU)
  if timeout "$RUN_TIMEOUT_S" "$PY" bench/pipeline.py --model "$model" --precision "$PRECISION" \
      --posts "$POSTS" --rounds 1 "${BATCH[@]}" --feed backlog --latency-max-s 10 --kafka-client "$KAFKA_CLIENT" \
      --host-processes "$HOST_PROCESSES" \
      --naive-posts 0 --agreement-posts 0 >"$OUT/$name.log" 2>&1; then
    tail -n 1 "$OUT/$name.log" >"$OUT/$name.json"
    results+=("$OUT/$name.json")
  else
    echo "gpu.sh: $name failed or ran past ${RUN_TIMEOUT_S}s; the end of $OUT/$name.log:" >&2
    tail -n 20 "$OUT/$name.log" >&2
    # a run that found something lost or doubled still printed its figures: keep them
    if tail -n 1 "$OUT/$name.log" | grep -q '^{'; then
      tail -n 1 "$OUT/$name.log" >"$OUT/$name.json"
      results+=("$OUT/$name.json")
    fi
  fi
done

if ((${#results[@]})); then
  "$PY" bench/gpu_models.py report "${results[@]}"
fi
echo "gpu.sh: done $(date -u +%FT%TZ)"
