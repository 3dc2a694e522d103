#!/usr/bin/env bash
# The GPU check from a checkout, with no network: CUDA tests + a timed full-scale run -> gpu_check.json.
# Usage: scripts/check_gpu.sh [--out gpu_check.json] [--dry-run] [--data-dir DIR]   (see: alad check-gpu -h)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec python -m alad_kit.cli check-gpu "$@"
