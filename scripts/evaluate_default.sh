#!/usr/bin/env bash
# Evaluate the offline default model on the public test splits; the figures in MODEL_CARD.md
# come from this script. Data: ../shared/data (see each folder's README for origin and licence).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MOOD_DATA:-../shared/data}
MM=.venv/bin/mood-monitor
$MM evaluate --task sentiment --data "$DATA/tweeteval/sentiment:test" --model default
$MM evaluate --task emotion --data "$DATA/goemotions/test.tsv" --model default
