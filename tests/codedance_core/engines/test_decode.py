"""The hf engine's static-cache decode loop against transformers' generate, on the tiny model."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from codedance_core.config.model import EngineConfig
from codedance_core.engines import GenerationRequest, SamplingParams
from codedance_core.engines.decode import supports
from codedance_core.engines.hf import HFEngine


def image_request(text: str, colour: tuple[int, int, int], size=(120, 90), key=None) -> GenerationRequest:
    content = [{"type": "image"}, {"type": "text", "text": text}]
    return GenerationRequest(
        messages=[{"role": "user", "content": content}],
        images=[Image.new("RGB", size, colour)],
        sample_key=key,
    )


def text_request(text: str, key=None) -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": text}], sample_key=key)


@pytest.fixture(scope="module")
def engines(tiny_bundle):
    """Today's path and the static loop over the same model."""
    return HFEngine(tiny_bundle, decode="generate"), HFEngine(tiny_bundle)


@pytest.fixture(scope="module")
def prompts():
    """Prompts of different lengths, with and without images, so rows are left-padded differently."""
    return [
        image_request("How many circles?", (255, 0, 0)),
        text_request("Crop the top left corner and count the squares in it, then answer."),
        text_request("hi"),
        image_request("Read the chart and tell me the tallest bar.", (0, 128, 255), size=(200, 60)),
    ]


def test_the_static_loop_is_the_default_for_the_tiny_model(tiny_bundle, engines):
    old, new = engines
    assert supports(tiny_bundle.model)
    assert new.decoder is not None and old.decoder is None
    assert EngineConfig(model="m").hf_decode == "static"


def test_greedy_equals_generate_for_a_batch_of_different_lengths(engines, prompts):
    old, new = engines
    params = SamplingParams(max_new_tokens=24, temperature=0)
    for before, after in zip(old.generate(prompts, params), new.generate(prompts, params), strict=True):
        assert after.token_ids == before.token_ids and after.text == before.text
        assert after.finish_reason == before.finish_reason == "length"
        assert after.logprobs == pytest.approx(before.logprobs, abs=1e-4)


def test_greedy_equals_generate_with_stop_strings_and_token_limits(engines, prompts):
    old, new = engines
    free = old.generate(prompts, SamplingParams(max_new_tokens=24, temperature=0))
    stops = (free[1].text[5:8], free[3].text[4:6])  # text each of two rows writes mid-way
    assert all(stop.strip() for stop in stops), [c.text for c in free]
    for limit in (3, 24):
        params = SamplingParams(max_new_tokens=limit, temperature=0, stop=stops)
        before, after = old.generate(prompts, params), new.generate(prompts, params)
        assert [c.token_ids for c in after] == [c.token_ids for c in before]
        assert [(c.finish_reason, c.stop_string) for c in after] == [
            (c.finish_reason, c.stop_string) for c in before
        ]
    assert any(c.finish_reason == "stop" for c in after) and any(c.finish_reason == "length" for c in after)


def test_sampling_is_reproducible_by_seed(engines, prompts):
    _, new = engines
    params = SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=7)
    first, again = new.generate(prompts, params), new.generate(prompts, params)
    assert [c.token_ids for c in first] == [c.token_ids for c in again]
    assert [c.logprobs for c in first] == [c.logprobs for c in again]
    other = new.generate(prompts, SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=8))
    assert [c.token_ids for c in other] != [c.token_ids for c in first]


def test_sampled_tokens_follow_the_model_distribution(tiny_bundle, engines):
    """Many one-token draws from one prompt: the token frequencies match softmax(logits / T)."""
    _, new = engines
    request = text_request("hi")
    params = SamplingParams(max_new_tokens=1, temperature=2.0, seed=0)
    draws = [c.token_ids[0] for c in new.generate([request] * 400, params)]
    prompt = tiny_bundle.encode_messages(request.messages)
    with torch.no_grad():
        logits = tiny_bundle.model(**tiny_bundle.model_inputs([prompt])).logits[0, -1]
    probs = torch.softmax(logits / 2.0, dim=-1)
    top = int(probs.argmax())
    assert abs(draws.count(top) / len(draws) - float(probs[top])) < 0.08


def continue_conversation(
    bundle, request: GenerationRequest, turn, observation: str, key
) -> GenerationRequest:
    """The next turn's request as the tool loop builds it: prompt, the turn, its closer, a tool result."""
    if request.token_ids is not None:
        base = list(request.token_ids)
    else:
        base = list(bundle.encode_messages(request.messages, request.images).token_ids)
    closer = bundle.tokenizer.encode("<|im_end|>\n", add_special_tokens=False)
    tool = bundle.encode_messages([{"role": "tool", "content": observation}], []).token_ids
    return GenerationRequest(
        token_ids=base + turn.token_ids + closer + list(tool), images=list(request.images), sample_key=key
    )


def test_a_continued_conversation_equals_a_fresh_encode_of_it(tiny_bundle, prompts):
    reusing = HFEngine(tiny_bundle)
    fresh = HFEngine(tiny_bundle, reuse_prefixes=False)
    params = SamplingParams(max_new_tokens=12, temperature=0, stop=("e",))
    requests = [
        GenerationRequest(messages=p.messages, images=p.images, sample_key=(f"item{i}", 0, 0))
        for i, p in enumerate(prompts[:3])
    ]
    for turn in range(1, 3):
        first = reusing.generate(requests, params)
        observations = ["4", "Traceback: NameError on line 2", "(336, 336) 12.5"]
        requests = [
            continue_conversation(tiny_bundle, request, completion, observations[i], (f"item{i}", 0, turn))
            for i, (request, completion) in enumerate(zip(requests, first, strict=True))
        ]
        hits = reusing.prefixes.hits
        continued, encoded = reusing.generate(requests, params), fresh.generate(requests, params)
        assert reusing.prefixes.hits == hits + len(requests)  # every row came from its kept prefix
        for after, before in zip(continued, encoded, strict=True):
            assert after.token_ids == before.token_ids and after.finish_reason == before.finish_reason
            assert after.logprobs == pytest.approx(before.logprobs, abs=1e-4)


def test_kept_prefixes_are_dropped_when_the_weights_change(tiny_model_dir):
    from codedance_core.models import load_model_bundle

    bundle = load_model_bundle(tiny_model_dir, device="cpu", dtype="float32")
    engine = HFEngine(bundle)
    params = SamplingParams(max_new_tokens=6, temperature=0)
    request = text_request("hi", key=("a", 0, 0))
    turn = engine.generate([request], params)[0]
    following = continue_conversation(bundle, request, turn, "7", ("a", 0, 1))
    assert engine.prefixes.find(("a", 0), following.token_ids) is not None
    with torch.no_grad():
        bundle.model.lm_head.weight.mul_(1.01)  # an optimizer step, in place
    assert engine.prefixes.find(("a", 0), following.token_ids) is None
    engine.generate([following], params)
    assert engine.prefixes.hits == 0  # prefilled in full
