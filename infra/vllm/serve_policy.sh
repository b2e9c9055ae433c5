#!/usr/bin/env bash
# Serve a policy checkpoint (a Qwen2.5-VL model saved by `codedance train`) behind vLLM's
# OpenAI-compatible API, for evaluation or synthesis against a fixed model outside the training loop.
#
# The engine of kind `openai` reaches it at http://POLICY_HOST:18902/v1 under the name "policy".
# Why its own port: the judge (serve_judge.sh, 18901) and a policy often share a node during
# evaluation. The checkpoint is required; everything else has an environment override, and extra
# arguments go to `vllm serve` as they are:
#   POLICY_MODEL=/checkpoints/rl/step-200 infra/vllm/serve_policy.sh
#   POLICY_MODEL=/checkpoints/sft PRINT_ONLY=1 infra/vllm/serve_policy.sh   # print the command only
set -euo pipefail

model="${POLICY_MODEL:?set POLICY_MODEL to a checkpoint directory (config.json + weights)}"
served_name="${POLICY_SERVED_NAME:-policy}"
host="${POLICY_HOST:-0.0.0.0}"
port="${POLICY_PORT:-18902}"
tensor_parallel="${POLICY_TENSOR_PARALLEL_SIZE:-1}"
gpu_memory="${POLICY_GPU_MEMORY_UTILIZATION:-0.9}"
# As the paper profile's engine: 10,240 prompt + 10,240 response tokens over up to 6 turns.
max_model_len="${POLICY_MAX_MODEL_LEN:-20480}"
# Each tool turn may return images: allow as many as a trajectory can hold.
max_images="${POLICY_MAX_IMAGES_PER_PROMPT:-16}"

cmd=(
  vllm serve "${model}"
  --served-model-name "${served_name}"
  --host "${host}"
  --port "${port}"
  --tensor-parallel-size "${tensor_parallel}"
  --gpu-memory-utilization "${gpu_memory}"
  --max-model-len "${max_model_len}"
  --limit-mm-per-prompt "{\"image\": ${max_images}}"
  --dtype bfloat16
  "$@"
)

if [[ "${PRINT_ONLY:-0}" == "1" ]]; then
  printf '%q ' "${cmd[@]}"
  printf '\n'
  exit 0
fi
if ! command -v vllm > /dev/null 2>&1; then
  echo "vllm is not installed here: run this in the worker image (infra/docker/worker.Dockerfile)" >&2
  exit 127
fi
echo "policy: serving ${model} as '${served_name}' on port ${port} (base URL http://$(hostname):${port}/v1)" >&2
exec "${cmd[@]}"
