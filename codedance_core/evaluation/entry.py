"""Evaluate one checkpoint or served model: the entry point the CLI and the pipeline share."""

from __future__ import annotations

import asyncio
from pathlib import Path

from codedance_core.config.evaluation import EvalConfig
from codedance_core.config.model import EngineConfig


def run_evaluation(config: EvalConfig, show_progress: bool = True, engine: EngineConfig | None = None):
    """Build the engine the config names and run the evaluation; returns `EvalOutputs`.

    A local checkpoint runs in-process with transformers, or with vLLM when `engine` says so (a GPU
    worker of the paper profile); served models are reached over HTTP."""
    from codedance_core.evaluation.runner import EvalRunner

    if config.model_dir and engine is not None and engine.kind == "vllm":
        from codedance_core.engines.vllm import VLLMEngine
        from codedance_core.models.images import pixel_bounds

        served = VLLMEngine.from_config(engine.model_copy(update={"model": config.model_dir}))
        name = config.model_name or Path(config.model_dir).name
        runner = EvalRunner(config, served, name, pixel_bounds=pixel_bounds(served.image_processor),
                            show_progress=show_progress, batched=True)
        return asyncio.run(runner.run())
    if config.model_dir:
        from codedance_core.engines.hf import HFEngine
        from codedance_core.models import load_model_bundle
        from codedance_core.models.images import pixel_bounds

        bundle = load_model_bundle(config.model_dir, device=config.device)
        name = config.model_name or Path(config.model_dir).name
        runner = EvalRunner(
            config,
            HFEngine(bundle),
            name,
            bundle=bundle,
            pixel_bounds=pixel_bounds(bundle.image_processor),
            show_progress=show_progress,
        )
        return asyncio.run(runner.run())
    from codedance_core.engines.openai import OpenAIEngine

    engine = OpenAIEngine(config.api_urls, model=config.model_name, concurrency=config.num_workers)

    async def go():
        try:
            name = config.model_name or await served_model_name(config.api_urls[0])
            return await EvalRunner(config, engine, name, show_progress=show_progress).run()
        finally:
            await engine.aclose()

    return asyncio.run(go())


async def served_model_name(base_url: str) -> str:
    """The first model a server lists at /models (what vLLM and `codedance serve` report)."""
    import httpx

    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{base_url.rstrip('/')}/models")
        response.raise_for_status()
        return str(response.json()["data"][0]["id"])


