"""The OpenAI-compatible server, driven by the stock `openai` client over real HTTP."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from PIL import Image

from codedance_core.engines import GenerationRequest, SamplingParams
from codedance_core.engines.hf import HFEngine
from codedance_core.engines.openai import OpenAIEngine
from codedance_core.models.images import encode_data_url
from codedance_core.serve import ServerThread, create_app

API_KEY = "test-key"


@pytest.fixture(scope="module")
def server(tiny_bundle):
    app = create_app(tiny_bundle, "tiny", api_key=API_KEY)
    with ServerThread(app) as base_url:
        yield base_url, app


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0], api_key=API_KEY, max_retries=0)


def image_message(text: str) -> dict:
    url = encode_data_url(Image.new("RGB", (90, 60), (255, 200, 0)))
    return {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}],
    }


def test_models_lists_the_served_model(client):
    assert [model.id for model in client.models.list().data] == ["tiny"]


def test_chat_with_an_image_matches_the_local_engine(client, tiny_bundle):
    response = client.chat.completions.create(
        model="tiny", messages=[image_message("How many?")], max_tokens=12, temperature=0
    )
    choice = response.choices[0]
    image = Image.new("RGB", (90, 60), (255, 200, 0))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}]
    local = HFEngine(tiny_bundle).generate(
        [GenerationRequest(messages=messages, images=[image])],
        SamplingParams(max_new_tokens=12, temperature=0),
    )[0]
    assert choice.message.content == local.text and choice.finish_reason == local.finish_reason
    assert response.usage.completion_tokens == len(local.token_ids)
    # the image's expanded pads are counted
    assert response.usage.prompt_tokens == len(tiny_bundle.encode_messages(messages, [image]).token_ids)


def test_stop_follows_openai_semantics_and_the_vllm_extension(client):
    free = (
        client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "count"}], max_tokens=16, temperature=0
        )
        .choices[0]
        .message.content
    )
    stop = free[5:8]
    messages = [{"role": "user", "content": "count"}]
    hidden = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=16, temperature=0, stop=[stop]
    )
    kept = client.chat.completions.create(
        model="tiny",
        messages=messages,
        max_tokens=16,
        temperature=0,
        stop=[stop],
        extra_body={"include_stop_str_in_output": True},
    )
    assert hidden.choices[0].finish_reason == "stop"
    assert kept.choices[0].message.content == hidden.choices[0].message.content + stop
    assert free.startswith(kept.choices[0].message.content)
    assert hidden.choices[0].model_extra["stop_reason"] == stop


def test_n_samples_and_logprobs(client):
    response = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=6,
        temperature=1.0,
        n=3,
        seed=4,
        logprobs=True,
    )
    assert [choice.index for choice in response.choices] == [0, 1, 2]
    for choice in response.choices:
        assert len(choice.logprobs.content) == 6 and all(
            entry.logprob <= 0 for entry in choice.logprobs.content
        )


def test_streaming_delivers_the_same_text(client):
    messages = [{"role": "user", "content": "stream please"}]
    whole = client.chat.completions.create(model="tiny", messages=messages, max_tokens=10, temperature=0)
    chunks = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=10, temperature=0, stream=True
    )
    assert (
        "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == whole.choices[0].message.content
    )


def test_wrong_api_key_is_refused(server):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server[0], api_key="wrong", max_retries=0).models.list()


@pytest.mark.parametrize(
    "content",
    [
        [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
        [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}],
        [{"type": "audio", "audio": "x"}],
    ],
)
def test_bad_content_is_a_400(client, content):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": content}], max_tokens=4
        )


def test_unknown_model_is_a_404(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )


def test_concurrent_requests_are_batched_and_all_answered(server):
    base_url, app = server
    engine = OpenAIEngine([base_url], api_key=API_KEY, vllm_extensions=True)
    before = app.state.batcher.batches_run
    requests = [GenerationRequest(messages=[{"role": "user", "content": f"question {i}"}]) for i in range(12)]
    completions = asyncio.run(
        engine._generate_and_close(requests, SamplingParams(max_new_tokens=6, temperature=0))
    )
    assert all(c.finish_reason == "length" and len(c.token_ids) == 6 == len(c.logprobs) for c in completions)
    assert app.state.batcher.batches_run - before < 12  # requests shared batches


def test_health_needs_no_key(server):
    assert httpx.get(server[0].removesuffix("/v1") + "/health").json() == {"status": "ok"}
