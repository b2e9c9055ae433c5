"""The OpenAI-compatible server over the `hf` engine: what evaluation and tests talk to locally
where production runs `vllm serve`.

`/v1/models` and `/v1/chat/completions` (images as data URLs, `stop`, `max_tokens`,
`temperature`, `top_p`, `seed`, `n`, `logprobs`, streaming) so the stock `openai` client works
unchanged. Streaming sends the whole completion as one chunk once it is generated: the wire format
is honoured, token-by-token latency is not a goal of a reference server. An API key, when set, is
required as a Bearer token. Prompts are encoded here (bad images are a 400 before any queueing)
and all generation goes through one `GenerationBatcher`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from codedance_core.engines.base import Completion, GenerationRequest, SamplingParams
from codedance_core.engines.hf import HFEngine
from codedance_core.models.bundle import ModelBundle
from codedance_core.models.images import ImageDecodeError
from codedance_core.serve.batcher import GenerationBatcher
from codedance_core.serve.protocol import (
    ChatCompletionRequest,
    chat_completion_body,
    error_body,
    logprobs_block,
    parse_messages,
    visible_text,
)


def create_app(
    bundle: ModelBundle,
    model_name: str,
    api_key: str | None = None,
    default_max_tokens: int = 512,
    max_batch_size: int = 32,
) -> FastAPI:
    """A FastAPI app serving `bundle` under the name `model_name`."""
    batcher = GenerationBatcher(
        HFEngine(bundle, max_batch_size=max_batch_size), max_batch_size=max_batch_size
    )
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="codedance serve", lifespan=lifespan)
    app.state.batcher = batcher

    @app.middleware("http")
    async def require_api_key(request: Request, call_next):
        authorised = request.headers.get("authorization", "") == f"Bearer {api_key}"
        if api_key and request.url.path.startswith("/v1/") and not authorised:
            return JSONResponse(error_body("invalid API key", "authentication_error", "invalid_api_key"), 401)
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def list_models() -> dict:
        card = {"id": model_name, "object": "model", "created": created, "owned_by": "codedance"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest):
        if body.model and body.model != model_name:
            return JSONResponse(error_body(f"model {body.model!r} not served", code="model_not_found"), 404)
        try:
            messages, images = parse_messages(body.messages)
            prompt = bundle.encode_messages(messages, images)
        except (ValueError, ImageDecodeError) as error:
            return JSONResponse(error_body(str(error)), 400)
        params = SamplingParams(
            max_new_tokens=body.token_limit or default_max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
            stop=body.stop_strings,
        )
        completions = await batcher.submit([GenerationRequest.from_prompt(prompt)] * body.n, params)
        failed = [completion.error for completion in completions if completion.finish_reason == "error"]
        if failed:
            return JSONResponse(error_body(f"generation failed: {failed[0]}", "server_error"), 500)
        choices = [_choice(index, completion, body) for index, completion in enumerate(completions)]
        generated = sum(len(completion.token_ids) for completion in completions)
        response = chat_completion_body(model_name, choices, len(prompt.token_ids), generated)
        if body.stream:
            return StreamingResponse(_one_chunk_stream(response), media_type="text/event-stream")
        return response

    def _choice(index: int, completion: Completion, body: ChatCompletionRequest) -> dict:
        choice = {
            "index": index,
            "message": {
                "role": "assistant",
                "content": visible_text(completion, body.include_stop_str_in_output),
            },
            "finish_reason": completion.finish_reason,
            "stop_reason": completion.stop_string,
            "logprobs": None,
        }
        if body.logprobs:
            tokens = [bundle.tokenizer.decode([token]) for token in completion.token_ids]
            choice["logprobs"] = logprobs_block(completion, tokens, body.return_tokens_as_token_ids)
        return choice

    return app


async def _one_chunk_stream(response: dict) -> AsyncIterator[str]:
    """Server-sent events of a finished completion: one content chunk per choice, then [DONE]."""
    for choice in response["choices"]:
        delta = {"role": "assistant", "content": choice["message"]["content"]}
        chunk = {
            "id": response["id"],
            "object": "chat.completion.chunk",
            "created": response["created"],
            "model": response["model"],
            "choices": [{"index": choice["index"], "delta": delta, "finish_reason": choice["finish_reason"]}],
        }
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"
