"""Configs for models and generation engines.

Three things are configured here and nowhere else:
- `TinyModelConfig`: the shape of the tiny Qwen2.5-VL-architecture model the `tiny` profile trains
  from scratch. Small enough that a forward takes milliseconds on one CPU core, yet the real
  architecture (vision tower, patch merger, M-RoPE), so every code path is the one a 7B takes.
- `ModelConfig`: which model directory to load and how (device, dtype, image resolution bounds).
- `EngineConfig`: which generation backend serves a stage (`hf` in-process, `vllm` on a GPU worker,
  `openai` for any OpenAI-compatible endpoint) and how the HTTP one behaves when the world is flaky.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from codedance_core.config.base import StrictModel

# Qwen2.5-VL sees images in 28x28 cells (14 px patches merged 2x2): every bound is in those units.
PIXELS_PER_CELL = 28 * 28


class TinyModelConfig(StrictModel):
    """Shape of the tiny Qwen2.5-VL model built locally with random weights."""

    vocab_size: int = Field(
        3000, ge=512, le=65536, description="Target BPE vocabulary size (special tokens included)."
    )
    text_layers: int = Field(2, ge=1, description="Decoder layers of the language model.")
    hidden_size: int = Field(64, ge=16, description="Hidden size of the language model.")
    intermediate_size: int = Field(128, ge=16, description="MLP inner size of the language model.")
    attention_heads: int = Field(4, ge=1, description="Query heads of the language model.")
    kv_heads: int = Field(
        2, ge=1, description="Key/value heads (grouped-query attention) of the language model."
    )
    max_position_embeddings: int = Field(8192, ge=512, description="Longest sequence the model is built for.")
    vision_depth: int = Field(2, ge=1, description="Transformer blocks of the vision tower.")
    vision_hidden_size: int = Field(32, ge=16, description="Hidden size of the vision tower.")
    vision_intermediate_size: int = Field(64, ge=16, description="MLP inner size of the vision tower.")
    vision_heads: int = Field(2, ge=1, description="Attention heads of the vision tower.")
    min_pixels: int = Field(
        4 * PIXELS_PER_CELL, ge=PIXELS_PER_CELL, description="Smallest image area after resizing."
    )
    max_pixels: int = Field(
        256 * PIXELS_PER_CELL,
        ge=PIXELS_PER_CELL,
        description="Largest image area after resizing (the tiny profile sets 144 cells).",
    )
    initializer_range: float = Field(
        0.2,
        gt=0,
        description="Std of the random init. Wider than the 7B's 0.02: at width 64, 0.02 makes every greedy "
        "output one repeated token, which hides batching and stop-string bugs.",
    )
    tie_word_embeddings: bool = Field(
        True, description="Share input and output embeddings (halves the params)."
    )
    seed: int = Field(0, description="Seed for the random weights.")
    corpus_rows: int = Field(
        400, ge=10, description="Suite rows whose text (prompts, questions, answers, code) the tokenizer is trained on."
    )
    pretrain_text_steps: int = Field(
        0,
        ge=0,
        description="Steps of the first pretraining phase: suite items in the policy's format, without the image, "
        "answered by a reply that copies the question or a tool's output (models/pretrain.py). Copying forms here.",
    )
    pretrain_steps: int = Field(
        0,
        ge=0,
        description="Steps of the second pretraining phase: the same conversations with the image; 0 with "
        "pretrain_text_steps 0 keeps the random weights.",
    )
    pretrain_rows: int = Field(1500, ge=1, description="Suite rows the pretraining conversations are made of.")
    pretrain_batch_size: int = Field(32, ge=1, description="Conversations per pretraining step.")
    pretrain_learning_rate: float = Field(
        3e-3, gt=0, description="Peak learning rate of the phase without the image (cosine)."
    )
    pretrain_image_learning_rate: float = Field(
        1e-3, gt=0, description="Peak learning rate of the phase with the image (cosine); gentler, to keep the copying."
    )
    pretrain_probe_every: int = Field(
        0,
        ge=0,
        description="Check the copy probe (models/copy_probe.py) every this many steps of the first phase and end "
        "it once each of pretrain_probe_forms passes pretrain_probe_target; pretrain_text_steps is then the cap. "
        "0: no checks.",
    )
    pretrain_probe_target: float = Field(
        0.95, gt=0, le=1, description="Share of probe conversations each gating copy form must copy exactly."
    )
    pretrain_probe_forms: list[Literal["thought", "code", "output"]] = Field(
        default_factory=lambda: ["code", "output"],
        min_length=1,
        description="The copy forms that must pass: by default those SFT's scripts and answers rely on (the question "
        "in a script, a printed value in the answer); every form is measured and recorded.",
    )
    pretrain_probe_rows: int = Field(
        48, ge=1, description="Held-out suite rows (test split) the copy probe is made of."
    )

    @model_validator(mode="after")
    def _check_heads(self) -> TinyModelConfig:
        if self.hidden_size % self.attention_heads:
            raise ValueError("hidden_size must be divisible by attention_heads")
        if self.hidden_size // self.attention_heads < 16:
            raise ValueError("head_dim (hidden_size / attention_heads) must be >= 16 for M-RoPE sections")
        if self.attention_heads % self.kv_heads:
            raise ValueError("attention_heads must be a multiple of kv_heads")
        if self.vision_hidden_size % self.vision_heads:
            raise ValueError("vision_hidden_size must be divisible by vision_heads")
        if self.min_pixels > self.max_pixels:
            raise ValueError("min_pixels must not exceed max_pixels")
        return self

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.attention_heads


class ModelConfig(StrictModel):
    """A model directory to load (tiny or a real checkpoint such as Qwen2.5-VL-7B-Instruct)."""

    path: str = Field(
        ".codedance/models/tiny",
        description="Local directory written by save_pretrained (tiny model or real checkpoint).",
    )
    device: str = Field(
        "auto", description="'auto' (cuda if available else cpu), 'cpu', 'cuda', 'cuda:1', ..."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype; 'auto' is bfloat16 on GPU and float32 on CPU."
    )
    min_pixels: int | None = Field(
        None, description="Override the image processor's min_pixels (None: keep)."
    )
    max_pixels: int | None = Field(
        None, description="Override the image processor's max_pixels (None: keep; paper uses 16384*28*28)."
    )


# How the hf engine decodes: its own loop over a static KV cache (engines/decode.py) where the model
# allows, or transformers' `generate` (kept to compare against).
DecodeLoop = Literal["static", "generate"]


class EngineConfig(StrictModel):
    """Which generation backend to use and how it behaves."""

    kind: Literal["hf", "vllm", "openai"] = Field(
        "hf", description="hf (transformers), vllm (GPU), openai (HTTP)."
    )
    model: str = Field(
        "",
        description="Model directory for hf/vllm; the served model name for openai ('' = first of /v1/models).",
    )
    base_urls: list[str] = Field(
        default_factory=list,
        description="OpenAI-compatible base URLs (…/v1), load-balanced; openai kind only.",
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key (may be unset)."
    )
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout of the HTTP engine in seconds.")
    connect_timeout_s: float = Field(
        10.0, gt=0, description="Connection timeout of the HTTP engine in seconds."
    )
    max_retries: int = Field(
        5, ge=0, description="Retries on 429/5xx/timeouts/connection errors (HTTP engine)."
    )
    backoff_initial_s: float = Field(
        0.5, ge=0, description="First retry delay; doubles each retry (with jitter)."
    )
    backoff_max_s: float = Field(30.0, ge=0, description="Ceiling of the retry delay.")
    concurrency: int = Field(32, ge=1, description="Requests in flight at once per engine (HTTP engine).")
    max_batch_size: int = Field(64, ge=1, description="Sequences generated together by a local engine.")
    device: str = Field("auto", description="Device of local engines ('auto', 'cpu', 'cuda', ...).")
    hf_decode: DecodeLoop = Field(
        "static",
        description="hf: 'static' decodes with the engine's own loop over a static KV cache (several times "
        "faster on small models; used where the model is a Qwen2(.5)-VL), 'generate' with transformers' generate.",
    )
    hf_decode_threads: int = Field(
        1,
        ge=0,
        description="hf, static loop on CPU: intra-op threads of the per-token steps (0: torch's setting). One "
        "thread is fastest for a small model: a step's ops take microseconds each.",
    )
    hf_reuse_prefixes: bool = Field(
        True,
        description="hf, static loop: keep each conversation's keys and values between its turns (by the "
        "request's sample_key), so a tool turn prefills only the tool's result.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Local engines' dtype."
    )
    gpu_memory_utilization: float = Field(
        0.85, gt=0, le=1, description="vLLM: fraction of GPU memory to use."
    )
    max_model_len: int = Field(20480, ge=256, description="vLLM: longest prompt+response in tokens.")
    tensor_parallel_size: int = Field(1, ge=1, description="vLLM: GPUs per engine.")
    max_images_per_prompt: int = Field(16, ge=1, description="vLLM: images allowed in one conversation.")
    sleep_mode: bool = Field(
        True,
        description="vLLM: build with sleep mode, so that a trainer sharing the GPU gets the engine's KV "
        "cache and weights' memory back during each update.",
    )
    sleep_level: Literal[1, 2] = Field(
        1,
        description="vLLM: 1 offloads the engine's weights to CPU memory while asleep, 2 discards them "
        "(every weight is reloaded by the sync after an update anyway).",
    )
    in_process: bool = Field(
        True,
        description="vLLM: run the engine core in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0), so "
        "the trainer's weights reach it by reference; weight sync needs it.",
    )
    weight_sync_bucket_mb: int = Field(
        512, ge=1, description="vLLM: megabytes of weights gathered and loaded at a time by weight sync."
    )

    @model_validator(mode="after")
    def _check_kind(self) -> EngineConfig:
        if self.kind == "openai" and not self.base_urls:
            raise ValueError("engine kind 'openai' needs at least one base_url")
        if self.kind in ("hf", "vllm") and not self.model:
            raise ValueError(f"engine kind {self.kind!r} needs `model` (a local model directory)")
        return self
