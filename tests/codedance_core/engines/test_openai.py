"""The HTTP engine against real local HTTP servers that misbehave on purpose.

Each server is a real aiohttp app on loopback whose replies follow a script (500, 429, garbage,
a dropped connection, then success), so retries, backoff, load balancing and failure reporting
are exercised over real sockets.
"""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Self

import pytest
from aiohttp import web
from PIL import Image

from codedance_core.config.model import EngineConfig
from codedance_core.engines import GenerationRequest, SamplingParams, make_engine
from codedance_core.engines.openai import OpenAIEngine, to_openai_messages

PARAMS = SamplingParams(max_new_tokens=8, temperature=0)


def chat_reply(content: str = "ok", finish: str = "stop", **choice_extra) -> dict:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
    return {"id": "x", "object": "chat.completion", "choices": [choice | choice_extra]}


class ScriptedServer:
    """Replies to /v1/chat/completions with the next scripted action; the last one repeats."""

    def __init__(self, script: list) -> None:
        self.script = list(script)
        self.bodies: list[dict] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(await request.json())
        action = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if action == "drop":
            request.transport.close()  # the connection dies mid-request
            await asyncio.sleep(0.05)
            return web.Response(status=200)
        if action == "garbage":
            return web.Response(status=200, text="<html>not json</html>")
        if action == "slow":
            await asyncio.sleep(0.3)
            return web.json_response(chat_reply())
        if isinstance(action, int):
            headers = {"Retry-After": "0"} if action == 429 else {}
            return web.json_response({"error": {"message": "nope"}}, status=action, headers=headers)
        return web.json_response(action)

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "served-model", "object": "model"}]})

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        app.router.add_get("/v1/models", self.models)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.runner.cleanup()


def engine_for(*urls: str, **kwargs) -> OpenAIEngine:
    options = {"model": "m", "max_retries": 3, "backoff_initial_s": 0.01, "backoff_max_s": 0.05} | kwargs
    return OpenAIEngine(list(urls), **options)


def ask(text: str = "hi") -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": text}])


def run(coroutine):
    return asyncio.run(coroutine)


def test_retries_5xx_and_429_then_succeeds():
    async def scenario():
        async with ScriptedServer([500, 503, 429, chat_reply("fine")]) as server:
            engine = engine_for(server.url)
            completion = (await engine.agenerate([ask()], PARAMS))[0]
            await engine.aclose()
            return completion, len(server.bodies)

    completion, attempts = run(scenario())
    assert completion.text == "fine" and completion.finish_reason == "stop"
    assert attempts == 4


def test_gives_up_after_max_retries_with_a_reason():
    async def scenario():
        async with ScriptedServer([502]) as server:
            engine = engine_for(server.url, max_retries=2)
            completion = (await engine.agenerate([ask()], PARAMS))[0]
            await engine.aclose()
            return completion, len(server.bodies)

    completion, attempts = run(scenario())
    assert (
        completion.finish_reason == "error"
        and "HTTP 502" in completion.error
        and "3 attempts" in completion.error
    )
    assert attempts == 3


def test_client_errors_are_not_retried():
    async def scenario():
        async with ScriptedServer([400]) as server:
            engine = engine_for(server.url)
            completion = (await engine.agenerate([ask()], PARAMS))[0]
            await engine.aclose()
            return completion, len(server.bodies)

    completion, attempts = run(scenario())
    assert completion.finish_reason == "error" and "HTTP 400" in completion.error and attempts == 1


def test_garbage_fails_its_request_only():
    async def scenario():
        async with ScriptedServer(["garbage", chat_reply("good")]) as server:
            engine = engine_for(server.url, concurrency=1)
            completions = await engine.agenerate([ask("a"), ask("b")], PARAMS)
            await engine.aclose()
            return completions

    first, second = run(scenario())
    assert first.finish_reason == "error" and "malformed" in first.error
    assert second.text == "good"


def test_a_dropped_connection_is_retried_on_another_replica():
    async def scenario():
        async with (
            ScriptedServer(["drop"]) as broken,
            ScriptedServer([chat_reply("from healthy")]) as healthy,
        ):
            engine = engine_for(broken.url, healthy.url)
            completions = await engine.agenerate([ask(str(i)) for i in range(6)], PARAMS)
            await engine.aclose()
            return completions, len(broken.bodies)

    completions, dropped = run(scenario())
    assert [c.text for c in completions] == ["from healthy"] * 6
    assert dropped >= 1  # the broken replica was tried and its failures absorbed


def test_a_dead_url_is_routed_around():
    async def scenario():
        async with ScriptedServer([chat_reply("alive")]) as alive:
            engine = engine_for("http://127.0.0.1:9/v1", alive.url, connect_timeout_s=1.0)
            completions = await engine.agenerate([ask(str(i)) for i in range(4)], PARAMS)
            await engine.aclose()
            return completions

    assert all(c.text == "alive" for c in run(scenario()))


def test_load_is_spread_over_replicas():
    async def scenario():
        async with ScriptedServer(["slow"]) as first, ScriptedServer(["slow"]) as second:
            engine = engine_for(first.url, second.url)
            completions = await engine.agenerate([ask(str(i)) for i in range(10)], PARAMS)
            await engine.aclose()
            return completions, len(first.bodies), len(second.bodies)

    completions, on_first, on_second = run(scenario())
    assert all(c.text == "ok" for c in completions)
    assert on_first == on_second == 5  # least-busy with round-robin ties: an even split


def test_payload_carries_images_stops_and_tool_observations():
    image = Image.new("RGB", (30, 20), (255, 0, 0))
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Count."}]},
        {"role": "assistant", "content": "<code>print(1)</code>"},
        {"role": "tool", "content": "1"},
    ]

    async def scenario():
        async with ScriptedServer([chat_reply("2")]) as server:
            engine = engine_for(server.url, model="")
            params = SamplingParams(max_new_tokens=9, temperature=0.5, top_p=0.9, seed=3, stop=("</code>",))
            await engine.agenerate([GenerationRequest(messages=messages, images=[image])], params)
            await engine.aclose()
            return server.bodies[0]

    body = run(scenario())
    assert body["model"] == "served-model"  # asked from /v1/models
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (9, 0.5, 0.9, 3)
    assert body["stop"] == ["</code>"]
    url = body["messages"][0]["content"][0]["image_url"]["url"]
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.size == (30, 20) and sent.convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    assert body["messages"][2] == {"role": "user", "content": "<tool_response>\n1\n</tool_response>"}


@pytest.mark.parametrize(
    ("reply", "text", "stop_string"),
    [
        (chat_reply("x = 1", stop_reason="</code>"), "x = 1</code>", "</code>"),  # vLLM-style stop_reason
        (chat_reply("x = 1</code>"), "x = 1</code>", "</code>"),  # stop kept by the server
        (chat_reply("x = 1</code> extra"), "x = 1</code>", "</code>"),  # a server that ignored `stop`
        (chat_reply("x = 1", finish="length"), "x = 1", None),
    ],
)
def test_the_stop_string_is_kept(reply, text, stop_string):
    async def scenario():
        async with ScriptedServer([reply]) as server:
            engine = engine_for(server.url)
            completion = (await engine.agenerate([ask()], SamplingParams(stop=("</code>",))))[0]
            await engine.aclose()
            return completion

    completion = run(scenario())
    assert (completion.text, completion.stop_string) == (text, stop_string)


def test_blocking_generate_and_config_factory(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sekret")

    async def serve_and_call():
        async with ScriptedServer([chat_reply("sync")]) as server:
            config = EngineConfig(kind="openai", base_urls=[server.url], model="m", api_key_env="TEST_KEY")
            engine = make_engine(config)
            loop = asyncio.get_running_loop()
            # `generate` runs its own event loop: call it from a worker thread, as sync callers do.
            completions = await loop.run_in_executor(None, engine.generate, [ask()], PARAMS)
            return completions, engine.api_key

    completions, api_key = run(serve_and_call())
    assert completions[0].text == "sync" and api_key == "sekret"


def test_more_image_parts_than_images_is_a_request_error():
    with pytest.raises(ValueError, match="more image parts"):
        to_openai_messages([{"role": "user", "content": [{"type": "image"}]}], [])
    assert to_openai_messages([{"role": "user", "content": "x"}], []) == [{"role": "user", "content": "x"}]


def test_concurrency_beyond_one_small_pool_stays_concurrent():
    """20 requests in flight over several small connection pools: all overlap on the slow server."""

    async def scenario():
        async with ScriptedServer(["slow"]) as server:
            engine = engine_for(server.url, concurrency=20)
            started = asyncio.get_running_loop().time()
            completions = await engine.agenerate([ask(str(i)) for i in range(20)], PARAMS)
            elapsed = asyncio.get_running_loop().time() - started
            clients = len(engine._client().busy)
            await engine.aclose()
            return completions, elapsed, clients

    completions, elapsed, clients = run(scenario())
    assert all(c.text == "ok" for c in completions)
    assert clients == 3  # ceil(20 / CONNECTIONS_PER_CLIENT)
    assert elapsed < 0.3 * 3  # one round of 0.3 s, not 20 nor 3 in a row


def test_an_image_is_encoded_once_and_a_changed_one_again():
    red, blue = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))
    part = [{"type": "image"}]
    first = to_openai_messages([{"role": "user", "content": part}], [red])[0]["content"][0]
    again = to_openai_messages([{"role": "user", "content": part}], [red])[0]["content"][0]
    other = to_openai_messages([{"role": "user", "content": part}], [blue])[0]["content"][0]
    assert first["image_url"]["url"] is again["image_url"]["url"]  # the same string object: no re-encode
    assert other["image_url"]["url"] != first["image_url"]["url"]
