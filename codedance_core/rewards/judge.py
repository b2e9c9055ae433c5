"""The LLM judge: free-form answers graded by a model behind an OpenAI-compatible endpoint.

Rules (`accuracy.py`) decide most answers; what they cannot decide comes here. Three promises:

- a rerun costs nothing: verdicts are cached on disk (`judge_cache.py`);
- a flaky server is retried (429, 5xx, timeouts, connection errors, a garbled body) with
  exponential backoff, moving to the next endpoint on each attempt (several base URLs are
  load-balanced round-robin, as the original's comma-separated `LLM_AS_A_JUDGE_BASE`);
- a failure is never a silent 0: after the retries, or on a reply without a verdict, the
  result has status `judge_error` and the reason, and the caller decides what that means;
- a dead judge costs a bounded wait per run (`judge_breaker.py`, `budget_s`), and the model
  name is looked up once per judge, its failure included, and reported once.

Without an endpoint there is no judge (`judge_if_configured` returns None, with one warning):
the rules decide what they can and the rest is recorded as `judge_error`.

The HTTP part is deliberately small (one POST, httpx) and does not share code with the
generation engines, so the reward has no dependency on the model side.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import os
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum

import httpx

from codedance_core.config.rewards import JudgeConfig
from codedance_core.rewards.judge_breaker import JudgeBreaker, Permit
from codedance_core.rewards.judge_cache import JudgeCache, verdict_key
from codedance_core.rewards.judge_prompt import JUDGE_PROMPT_VERSION, judge_messages

_log = logging.getLogger(__name__)

_VERDICT = re.compile(r"judge?ment\s*[:：]\s*\**\s*([01])\b", re.IGNORECASE)


class JudgeStatus(str, Enum):
    OK = "ok"
    JUDGE_ERROR = "judge_error"


@dataclass(frozen=True)
class JudgeRequest:
    """One answer to grade."""

    question: str
    gold: str
    prediction: str


@dataclass(frozen=True)
class JudgeVerdict:
    """A score of 1.0/0.0 with status ok, or score None with status judge_error; `reason` says why."""

    status: str
    score: float | None
    reason: str
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.status == JudgeStatus.OK.value


class JudgeConfigError(ValueError):
    """The judge cannot be used as configured (no endpoint): a setup error, not a judge failure."""


class _TransientJudgeError(Exception):
    """Worth another attempt: 429, 5xx, timeout, connection error, a body that is not JSON."""


class _FatalJudgeError(Exception):
    """Not worth another attempt: 4xx other than 429, a reply without a verdict."""


class _JudgeUnavailable(_FatalJudgeError):
    """The breaker is open: the run's budget for waiting on a failing judge is spent."""


def parse_judgement(reply: str) -> float | None:
    """'Judgement: 1' -> 1.0, 'Judgement: 0' -> 0.0 (the last one wins), anything else -> None."""
    verdicts = _VERDICT.findall(reply)
    return float(verdicts[-1]) if verdicts else None


def resolve_base_urls(config: JudgeConfig) -> list[str]:
    """The configured base URLs, else the comma-separated list in the environment variable."""
    urls = list(config.base_urls) or os.environ.get(config.base_url_env, "").split(",")
    urls = [url.strip().rstrip("/") for url in urls if url.strip()]
    if not urls:
        raise JudgeConfigError(
            f"no judge endpoint: set judge.base_urls in the reward config or {config.base_url_env}"
        )
    return urls


def judge_if_configured(config: JudgeConfig) -> LLMJudge | None:
    """The LLM judge when an endpoint is configured (in the config or its environment variable),
    else None, with one warning: answers no rule decides are then recorded as judge errors, never
    silently wrong. Call it once per run, so that the warning is said once."""
    try:
        resolve_base_urls(config)
    except JudgeConfigError as error:
        _log.warning("%s; scoring by rules only: answers no rule decides are recorded as judge_error", error)
        return None
    return LLMJudge(config)


class LLMJudge:
    """Grades answers through an OpenAI-compatible chat endpoint, with a cache and retries."""

    def __init__(self, config: JudgeConfig, *, cache: JudgeCache | None = None) -> None:
        self.config = config
        self.base_urls = resolve_base_urls(config)
        self.cache = (
            cache if cache is not None else (JudgeCache(config.cache_path) if config.cache_path else None)
        )
        self._endpoint_cycle = itertools.cycle(self.base_urls)
        self.breaker = JudgeBreaker(config.budget_s, config.probe_after_s)
        # The /models lookup, shared by every request of every loop and thread using this judge:
        # the first request makes it, the others await its outcome, failure included.
        self._lookup_lock = threading.Lock()
        self._model_lookup: concurrent.futures.Future[tuple[str, str]] | None = None
        self._lookup_failed_at = 0.0
        self._headers = {"Authorization": f"Bearer {os.environ.get(config.api_key_env, 'EMPTY')}"}

    async def judge_many(self, requests: Sequence[JudgeRequest]) -> list[JudgeVerdict]:
        """Verdicts in the order of `requests`, at most `config.concurrency` in flight."""
        limit = asyncio.Semaphore(self.config.concurrency)
        timeout = httpx.Timeout(self.config.request_timeout_s)
        pool = httpx.Limits(max_connections=self.config.concurrency)
        async with httpx.AsyncClient(timeout=timeout, limits=pool, headers=self._headers) as client:

            async def bounded(request: JudgeRequest) -> JudgeVerdict:
                async with limit:
                    return await self.judge(client, request)

            return list(await asyncio.gather(*(bounded(request) for request in requests)))

    def judge_many_sync(self, requests: Sequence[JudgeRequest]) -> list[JudgeVerdict]:
        """`judge_many` for callers without an event loop."""
        return asyncio.run(self.judge_many(requests))

    async def judge(self, client: httpx.AsyncClient, request: JudgeRequest) -> JudgeVerdict:
        """One verdict: from the cache when known, else from the endpoint (then cached)."""
        try:
            model = await self._resolved_model(client)
        except (_TransientJudgeError, _FatalJudgeError) as error:
            return JudgeVerdict(JudgeStatus.JUDGE_ERROR.value, None, f"could not list models: {error}")
        key = verdict_key(model, JUDGE_PROMPT_VERSION, request.question, request.gold, request.prediction)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return JudgeVerdict(JudgeStatus.OK.value, hit[0], hit[1], cached=True)
        try:
            reply = await self._complete(client, model, request)
        except (_TransientJudgeError, _FatalJudgeError) as error:
            return JudgeVerdict(JudgeStatus.JUDGE_ERROR.value, None, str(error))
        score = parse_judgement(reply)
        if score is None:
            return JudgeVerdict(JudgeStatus.JUDGE_ERROR.value, None, f"no verdict in reply: {reply[:200]!r}")
        if self.cache is not None:
            self.cache.put(key, score, reply, model=model, prompt_version=JUDGE_PROMPT_VERSION)
        return JudgeVerdict(JudgeStatus.OK.value, score, reply)

    async def _resolved_model(self, client: httpx.AsyncClient) -> str:
        # An empty model name means "whatever the server serves", asked once per judge.
        if self.config.model:
            return self.config.model
        with self._lookup_lock:
            lookup = self._model_lookup
            if lookup is not None and lookup.done() and lookup.result()[1]:
                retry_at = self._lookup_failed_at + self.config.probe_after_s
                if self.config.probe_after_s > 0 and time.monotonic() >= retry_at:
                    lookup = None  # as long after a failure as the breaker waits: ask again
            owner = lookup is None
            if lookup is None:
                lookup = self._model_lookup = concurrent.futures.Future()
        if owner:
            await self._look_up_model(client, lookup)
        model, failure = await asyncio.wrap_future(lookup)
        if failure:
            raise _FatalJudgeError(failure)  # a fresh exception each time: a shared one grows its traceback
        return model

    async def _look_up_model(
        self, client: httpx.AsyncClient, lookup: concurrent.futures.Future[tuple[str, str]]
    ) -> None:
        """Settle `lookup` with (model, "") or ("", why not)."""
        try:
            listing = await self._with_retries(
                lambda base, timeout: client.get(f"{base}/models", timeout=timeout)
            )
            try:
                model = str(listing["data"][0]["id"])
            except (KeyError, IndexError, TypeError) as error:
                raise _FatalJudgeError(f"unexpected /models reply: {str(listing)[:200]}") from error
        except (_TransientJudgeError, _FatalJudgeError) as error:
            self._lookup_failed_at = time.monotonic()
            _log.warning(
                "LLM judge: could not list models at %s: %s; answers no rule decides are recorded as "
                "judge_error (set judge.model to skip the lookup)",
                ", ".join(self.base_urls),
                error,
            )
            lookup.set_result(("", str(error) or type(error).__name__))
        except BaseException:
            # Cancelled midway: the requests waiting on it fail, the next one looks again.
            with self._lookup_lock:
                self._model_lookup = None
            lookup.set_result(("", "the model lookup was cancelled"))
            raise
        else:
            lookup.set_result((model, ""))

    async def _complete(self, client: httpx.AsyncClient, model: str, request: JudgeRequest) -> str:
        body = {
            "model": model,
            "messages": judge_messages(request.question, request.gold, request.prediction),
            "temperature": 0.0,
            "max_tokens": self.config.max_tokens,
        }
        reply = await self._with_retries(
            lambda base, timeout: client.post(f"{base}/chat/completions", json=body, timeout=timeout)
        )
        try:
            return str(reply["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError) as error:
            raise _FatalJudgeError(f"unexpected completion reply: {str(reply)[:200]}") from error

    async def _with_retries(self, send: Callable[[str, float], Awaitable[httpx.Response]]) -> dict:
        """JSON of the first good response; each attempt goes to the next endpoint, if the breaker
        lets it, and waits (backoff and request together) no longer than the breaker allows."""
        last_error: Exception | None = None
        for attempt in range(self.config.max_retries + 1):
            permit = self.breaker.admit()
            if permit is None:
                raise _JudgeUnavailable(
                    self.breaker.reason() + (f"; last: {last_error}" if last_error else "")
                )
            started = time.monotonic()
            try:
                return await self._attempt(send, permit, attempt, last_error, started)
            except _TransientJudgeError as error:
                self.breaker.failed(permit, time.monotonic() - started)
                last_error = error
            except _JudgeUnavailable:
                self.breaker.release(permit)
                raise
            except _FatalJudgeError:
                self.breaker.answered(permit)
                raise
            except BaseException:
                self.breaker.release(permit)
                raise
        raise _TransientJudgeError(
            f"gave up after {self.config.max_retries + 1} attempts; last: {last_error}"
        )

    async def _attempt(
        self,
        send: Callable[[str, float], Awaitable[httpx.Response]],
        permit: Permit,
        attempt: int,
        last_error: Exception | None,
        started: float,
    ) -> dict:
        if attempt:
            await asyncio.sleep(min(self._backoff_delay(attempt, last_error), permit.wait_s))
            if self.breaker.is_open and not permit.probe:  # other requests spent the budget meanwhile
                raise _JudgeUnavailable(f"{self.breaker.reason()}; last: {last_error}")
        timeout = min(self.config.request_timeout_s, permit.wait_s - (time.monotonic() - started))
        base = next(self._endpoint_cycle)
        if timeout <= 0:
            raise _TransientJudgeError(f"{base}: no time left in judge.budget_s for a request")
        try:
            # httpx's timeout bounds each phase; asyncio's bounds the whole exchange.
            async with asyncio.timeout(timeout):
                response = await send(base, timeout)
        except (TimeoutError, httpx.TimeoutException, httpx.TransportError) as error:
            kind = "TimeoutError" if isinstance(error, TimeoutError) else type(error).__name__
            raise _TransientJudgeError(f"{base}: {kind} after {timeout:.1f} s: {error}") from error
        payload = _checked_json(response, base)
        self.breaker.answered(permit)
        return payload

    def _backoff_delay(self, attempt: int, error: Exception | None) -> float:
        delay = min(self.config.backoff_initial_s * 2 ** (attempt - 1), self.config.backoff_max_s)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            delay = min(max(delay, retry_after), self.config.backoff_max_s)
        # Jitter spreads the retries of many concurrent requests hit by the same outage.
        return delay * (0.75 + 0.5 * random.random())


def _checked_json(response: httpx.Response, base: str) -> dict:
    status = response.status_code
    if status == 429 or status >= 500:
        error = _TransientJudgeError(f"{base}: HTTP {status}: {response.text[:200]}")
        error.retry_after = _retry_after_seconds(response)  # type: ignore[attr-defined]
        raise error
    if status >= 400:
        raise _FatalJudgeError(f"{base}: HTTP {status}: {response.text[:200]}")
    try:
        payload = response.json()
    except ValueError as error:
        raise _TransientJudgeError(f"{base}: body is not JSON: {response.text[:200]!r}") from error
    if not isinstance(payload, dict):
        raise _TransientJudgeError(f"{base}: body is not a JSON object: {response.text[:200]!r}")
    return payload


def _retry_after_seconds(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None
