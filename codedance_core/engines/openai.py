"""Any OpenAI-compatible chat endpoint as an engine: served policies, the teacher, the judge.

The network is the flaky part of the pipeline, so this engine is built around it:
- pooled keep-alive connections per event loop, at most `concurrency` requests in flight, split
  over several `httpx.AsyncClient`s of at most `CONNECTIONS_PER_CLIENT` connections each: httpcore
  rescans its whole pool (quadratically) on every request, which at 64 connections cost seconds
  of CPU per few hundred calls; small pools make that scan cheap;
- retries with exponential backoff and jitter on 429, 5xx, timeouts and dropped connections,
  honouring `Retry-After`, each retry going to another base URL when there is one;
- several base URLs, the least busy first (ties in round-robin order), for a pool of replicas;
- a request that still fails, or gets a malformed answer, yields a completion with
  finish_reason 'error' and the reason: its trajectory ends, the batch goes on.

Conversations are sent as the local engines render them: images as data URLs, and tool
observations as user turns wrapped in <tool_response> (our chat template's rendering), so a
served model reads the same prompt as a local one. With `vllm_extensions` (vLLM and our own
server understand them) the stop string is kept in the text and token ids come back with their
log-probs; otherwise the matched stop string is restored from the `stop_reason` field if the
server reports it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import weakref
from collections.abc import Sequence
from typing import Any

import httpx

from codedance_core.config.model import EngineConfig
from codedance_core.engines.base import (
    Completion,
    GenerationEngine,
    GenerationRequest,
    SamplingParams,
    first_stop,
)
from codedance_core.models.images import encode_data_url

RETRYABLE_STATUS = {408, 409, 429} | set(range(500, 600))
CONNECTIONS_PER_CLIENT = 8


class RetryableError(Exception):
    """A failure worth retrying elsewhere or later; `retry_after` is the server's hint in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def to_openai_messages(messages: Sequence[dict], images: Sequence) -> list[dict]:
    """OpenAI chat messages: image placeholder parts become data URLs (taking `images` in order),
    tool messages become user turns wrapped in <tool_response>."""
    pending = iter(images)
    converted = []
    for message in messages:
        content = message["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        out_parts = []
        for part in parts:
            if part.get("type") == "image":
                image = next(pending, None)
                if image is None:
                    raise ValueError("more image parts in the messages than images")
                out_parts.append({"type": "image_url", "image_url": {"url": _data_url(image)}})
            else:
                out_parts.append(part)
        role = message["role"]
        if role == "tool":
            role = "user"
            out_parts = [{"type": "text", "text": "<tool_response>\n"}, *out_parts]
            out_parts.append({"type": "text", "text": "\n</tool_response>"})
        if all(part.get("type") == "text" for part in out_parts):
            converted.append({"role": role, "content": "".join(part["text"] for part in out_parts)})
        else:
            converted.append({"role": role, "content": out_parts})
    return converted


_DATA_URLS: dict[int, tuple[weakref.ref, str]] = {}


def _data_url(image) -> str:
    """The image's data URL, encoded once per image object: every turn of a conversation sends its
    images again, and PNG encoding was the harness's largest CPU cost after the HTTP pool."""
    entry = _DATA_URLS.get(id(image))
    if entry is not None and entry[0]() is image:
        return entry[1]
    url = encode_data_url(image)
    image_id = id(image)

    def forget(reference: weakref.ref) -> None:
        if _DATA_URLS.get(image_id, (None,))[0] is reference:
            del _DATA_URLS[image_id]

    _DATA_URLS[image_id] = (weakref.ref(image, forget), url)
    return url


class OpenAIEngine(GenerationEngine):
    """Async client of one or more OpenAI-compatible `/v1` base URLs."""

    def __init__(
        self,
        base_urls: Sequence[str],
        model: str = "",
        api_key: str | None = None,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 10.0,
        max_retries: int = 5,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        concurrency: int = 32,
        vllm_extensions: bool = False,
    ) -> None:
        if not base_urls:
            raise ValueError("OpenAIEngine needs at least one base URL")
        self.base_urls = [url.rstrip("/") for url in base_urls]
        self.model = model
        self.api_key = api_key
        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self.max_retries = max_retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.concurrency = concurrency
        self.vllm_extensions = vllm_extensions
        self.in_flight = {url: 0 for url in self.base_urls}
        self.sent = {url: 0 for url in self.base_urls}
        self._turn = itertools.count()
        self._clients: dict[int, _ClientPool] = {}

    @classmethod
    def from_config(cls, config: EngineConfig, vllm_extensions: bool = False) -> OpenAIEngine:
        return cls(
            config.base_urls,
            model=config.model,
            api_key=os.environ.get(config.api_key_env),
            timeout_s=config.timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            max_retries=config.max_retries,
            backoff_initial_s=config.backoff_initial_s,
            backoff_max_s=config.backoff_max_s,
            concurrency=config.concurrency,
            vllm_extensions=vllm_extensions,
        )

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[Completion]:
        """Blocking wrapper; do not call from inside a running event loop (use `agenerate`)."""
        return asyncio.run(self._generate_and_close(requests, params))

    async def _generate_and_close(self, requests, params) -> list[Completion]:
        try:
            return await self.agenerate(requests, params)
        finally:
            await self.aclose()

    async def agenerate(
        self, requests: Sequence[GenerationRequest], params: SamplingParams
    ) -> list[Completion]:
        return list(await asyncio.gather(*(self.complete(request, params) for request in requests)))

    async def complete(self, request: GenerationRequest, params: SamplingParams) -> Completion:
        """One chat completion with retries; never raises for a failed request."""
        if request.messages is None:
            return Completion.failed("the openai engine needs messages, got token ids only")
        try:
            payload = await self._payload(request, params)
        except (OSError, ValueError) as error:
            return Completion.failed(f"cannot build request: {error!r}")
        pool = self._client()
        async with pool.semaphore:
            client = pool.least_busy()
            pool.busy[client] += 1
            try:
                return await self._post_with_retries(client, payload, params)
            finally:
                pool.busy[client] -= 1

    async def _post_with_retries(self, client: httpx.AsyncClient, payload: dict, params) -> Completion:
        last_url: str | None = None
        for attempt in range(self.max_retries + 1):
            url = self._pick_url(avoid=last_url)
            try:
                body = await self._post(client, url, payload)
            except RetryableError as error:
                last_url = url
                if attempt == self.max_retries:
                    return Completion.failed(f"gave up after {attempt + 1} attempts: {error}")
                await asyncio.sleep(self._backoff(attempt, error.retry_after))
                continue
            except ValueError as error:
                return Completion.failed(str(error))
            return self._completion(body, params)
        raise AssertionError("unreachable")

    async def _post(self, client: httpx.AsyncClient, url: str, payload: dict) -> dict:
        self.in_flight[url] += 1
        self.sent[url] += 1
        try:
            response = await client.post(f"{url}/chat/completions", json=payload, headers=self._headers())
        except (httpx.TimeoutException, httpx.TransportError) as error:
            raise RetryableError(f"{url}: {type(error).__name__}: {error}") from error
        finally:
            self.in_flight[url] -= 1
        if response.status_code in RETRYABLE_STATUS:
            raise RetryableError(f"{url}: HTTP {response.status_code}", _retry_after(response))
        if response.status_code != 200:
            raise ValueError(f"{url}: HTTP {response.status_code}: {response.text[:200]}")
        try:
            body = response.json()
            body["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise ValueError(f"{url}: malformed response: {response.text[:200]!r}") from error
        return body

    def _pick_url(self, avoid: str | None) -> str:
        """Least busy URL, ties broken round-robin; a URL that just failed only if it is the only one."""
        candidates = [url for url in self.base_urls if url != avoid] or self.base_urls
        start = next(self._turn) % len(candidates)
        rotated = candidates[start:] + candidates[:start]
        return min(rotated, key=lambda url: self.in_flight[url])

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max_s)
        delay = min(self.backoff_max_s, self.backoff_initial_s * 2**attempt)
        return delay * random.uniform(0.5, 1.0)  # jitter: replicas recovering are not hit in lockstep

    async def _payload(self, request: GenerationRequest, params: SamplingParams) -> dict:
        payload: dict[str, Any] = {
            "model": self.model or await self._served_model(),
            "messages": to_openai_messages(request.messages or [], request.images),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.seed is not None:
            payload["seed"] = params.seed
        if params.stop:
            payload["stop"] = list(params.stop)
        if self.vllm_extensions:
            payload |= {
                "include_stop_str_in_output": True,
                "logprobs": True,
                "return_tokens_as_token_ids": True,
            }
        return payload

    async def _served_model(self) -> str:
        """The first model of /v1/models, asked once and remembered."""
        client = self._client().least_busy()
        for attempt in range(self.max_retries + 1):
            url = self._pick_url(avoid=None)
            try:
                response = await client.get(f"{url}/models", headers=self._headers())
                response.raise_for_status()
                self.model = response.json()["data"][0]["id"]
                return self.model
            except (httpx.HTTPError, KeyError, IndexError, ValueError) as error:
                if attempt == self.max_retries:
                    raise ValueError(f"cannot list models at {url}: {error}") from error
                await asyncio.sleep(self._backoff(attempt, None))
        raise AssertionError("unreachable")

    def _completion(self, body: dict, params: SamplingParams) -> Completion:
        choice = body["choices"][0]
        text = choice["message"].get("content") or ""
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        stop_string = None
        stop_reason = choice.get("stop_reason")
        if params.stop:
            matched = first_stop(text, params.stop)
            if matched is not None:  # kept by the server (vLLM extension), or a server that ignored `stop`
                end, stop_string = matched
                text, finish = text[:end], "stop"
            elif isinstance(stop_reason, str) and stop_reason in params.stop:
                text, stop_string = text + stop_reason, stop_reason
        token_ids, logprobs = _token_logprobs(choice.get("logprobs"))
        return Completion(text, token_ids, logprobs, finish, stop_string)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _client(self) -> _ClientPool:
        """The client pool of the running event loop (an AsyncClient must not cross loops)."""
        loop_id = id(asyncio.get_running_loop())
        if loop_id not in self._clients:
            self._clients[loop_id] = _ClientPool(self.concurrency, self.timeout)
        return self._clients[loop_id]

    async def aclose(self) -> None:
        """Close the running loop's clients."""
        pool = self._clients.pop(id(asyncio.get_running_loop()), None)
        if pool is not None:
            await asyncio.gather(*(client.aclose() for client in pool.busy))


class _ClientPool:
    """`concurrency` connections as several small httpx clients, and the bound on requests in flight."""

    def __init__(self, concurrency: int, timeout: httpx.Timeout) -> None:
        clients = -(-concurrency // CONNECTIONS_PER_CLIENT)
        size = -(-concurrency // clients)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        tls = httpx.create_ssl_context()  # one context: loading the CA bundle costs ~40 ms each
        self.busy = {httpx.AsyncClient(timeout=timeout, limits=limits, verify=tls): 0 for _ in range(clients)}
        self.semaphore = asyncio.Semaphore(concurrency)

    def least_busy(self) -> httpx.AsyncClient:
        return min(self.busy, key=self.busy.__getitem__)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _token_logprobs(logprobs: dict | None) -> tuple[list[int], list[float]]:
    """Token ids and log-probs from an OpenAI `logprobs` block; ids only when sent as 'token_id:N'."""
    content = (logprobs or {}).get("content") or []
    values = [float(entry["logprob"]) for entry in content]
    tokens = [str(entry.get("token", "")) for entry in content]
    if tokens and all(token.startswith("token_id:") for token in tokens):
        return [int(token.split(":", 1)[1]) for token in tokens], values
    return [], values
