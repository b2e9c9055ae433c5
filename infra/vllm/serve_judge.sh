#!/usr/bin/env bash
# Serve the LLM judge: Qwen2.5-72B-Instruct behind vLLM's OpenAI-compatible API, on one 8-GPU node.
#
# The reward and the evaluation ask it only what the rules cannot decide (codedance_core/rewards/judge.py),
# under the model name "judge". Point the pipeline at it with
#   export LLM_AS_A_JUDGE_BASE=http://JUDGE_HOST:18901/v1     (comma-separate several replicas)
# Runs in the worker image (infra/docker/worker.Dockerfile), which has vLLM; the weights are a local
# directory (nothing is downloaded at run time). Every setting has an environment override, and
# extra arguments are passed to `vllm serve` as they are:
#   JUDGE_PORT=18911 infra/vllm/serve_judge.sh --enable-prefix-caching
#   PRINT_ONLY=1 infra/vllm/serve_judge.sh      # print the command, start nothing
set -euo pipefail

model="${JUDGE_MODEL:-/models/Qwen2.5-72B-Instruct}"
served_name="${JUDGE_SERVED_NAME:-judge}"
host="${JUDGE_HOST:-0.0.0.0}"
port="${JUDGE_PORT:-18901}"
tensor_parallel="${JUDGE_TENSOR_PARALLEL_SIZE:-8}"
gpu_memory="${JUDGE_GPU_MEMORY_UTILIZATION:-0.9}"
# Judge prompts are a 7-shot consistency prompt plus one answer: short contexts suffice.
max_model_len="${JUDGE_MAX_MODEL_LEN:-16384}"

cmd=(
  vllm serve "${model}"
  --served-model-name "${served_name}"
  --host "${host}"
  --port "${port}"
  --tensor-parallel-size "${tensor_parallel}"
  --gpu-memory-utilization "${gpu_memory}"
  --max-model-len "${max_model_len}"
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
echo "judge: serving ${model} as '${served_name}' on port ${port}; set LLM_AS_A_JUDGE_BASE=http://$(hostname):${port}/v1" >&2
exec "${cmd[@]}"
