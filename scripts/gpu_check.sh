#!/usr/bin/env bash
# The GPU check, on a GPU machine lent by the device tool (see scripts/gpu_check.py for what it
# measures). Prepare here first: `bash scripts/gpu_check_wheels.sh` puts the wheels the GPU image
# lacks in .whl/; then run there, carrying .whl:
#   bash scripts/gpu_check.sh            # writes $OUT/gpu_check.json (or ./out/ without $OUT)
# Extra arguments go to gpu_check.py (e.g. --sft-tokens 4096).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/codedance-site .whl/*.whl
  export PYTHONPATH=/tmp/codedance-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec python3 scripts/gpu_check.py "$@"
