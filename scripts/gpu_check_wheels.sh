#!/usr/bin/env bash
# Builds, on this machine, the wheels the GPU machine's image lacks for scripts/gpu_check.sh, into
# .whl/ (git-ignored; the device tool carries it). That image has torch, transformers, accelerate,
# peft, numpy, pyarrow, pillow and sympy, but no DeepSpeed, no pydantic (our configs need it) and
# no math-verify (the GRPO step's scoring needs it).
# DeepSpeed is built as a pure-Python wheel: its ops compile just in time on the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.whl
rm -rf "$out" && mkdir -p "$out"
python=${PYTHON:-.venv/bin/python}
version() { "$python" -c "import importlib.metadata as m; print(m.version('$1'))"; }

DS_BUILD_OPS=0 "$python" -m pip wheel --quiet --no-deps --no-build-isolation \
  "deepspeed==$(version deepspeed)" -w "$out"
# Pure-Python or manylinux wheels for the image's Python 3.12 on x86-64.
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$out" \
  "hjson==$(version hjson)" \
  "pydantic==$(version pydantic)" "pydantic_core==$(version pydantic_core)" \
  "annotated-types==$(version annotated-types)" "typing-inspection==$(version typing-inspection)" \
  "typing_extensions==$(version typing_extensions)" \
  "math-verify==$(version math-verify)" "latex2sympy2_extended==$(version latex2sympy2_extended)" \
  "antlr4-python3-runtime==$(version antlr4-python3-runtime)"
du -sh "$out"
ls "$out"
