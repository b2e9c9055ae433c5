"""The transformers engine: batching, log-probs, stop strings and seeds, on the tiny model."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from codedance_core.engines import GenerationRequest, SamplingParams
from codedance_core.engines.hf import HFEngine, stop_candidates
from codedance_core.models import load_model_bundle
from codedance_core.models.inputs import EncodedPrompt

GREEDY = SamplingParams(max_new_tokens=20, temperature=0)


def image_request(text: str, colour: tuple[int, int, int], size=(120, 90)) -> GenerationRequest:
    content = [{"type": "image"}, {"type": "text", "text": text}]
    return GenerationRequest(
        messages=[{"role": "user", "content": content}], images=[Image.new("RGB", size, colour)]
    )


def text_request(text: str) -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": text}])


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    return HFEngine(tiny_bundle, max_batch_size=8)


@pytest.fixture(scope="module")
def mixed_requests():
    return [
        image_request("How many circles?", (255, 0, 0)),
        text_request("Crop the top left corner and count the squares in it, then answer."),
        text_request("hi"),
        image_request("Read the chart.", (0, 128, 255), size=(200, 60)),
    ]


def test_batched_greedy_equals_one_at_a_time(engine, mixed_requests):
    batched = engine.generate(mixed_requests, GREEDY)
    alone = [engine.generate([request], GREEDY)[0] for request in mixed_requests]
    for together, single in zip(batched, alone):
        assert together.token_ids == single.token_ids
        assert together.text == single.text
        assert together.logprobs == pytest.approx(single.logprobs, abs=1e-4)
    assert len({tuple(c.token_ids) for c in batched}) > 1  # the rows really differ


def test_logprobs_match_a_recomputed_forward(engine, tiny_bundle, mixed_requests):
    for params in (GREEDY, SamplingParams(max_new_tokens=12, temperature=0.7, seed=1)):
        completion = engine.generate([mixed_requests[0]], params)[0]
        prompt = tiny_bundle.encode_messages(mixed_requests[0].messages, mixed_requests[0].images)
        full = EncodedPrompt(prompt.token_ids + completion.token_ids, prompt.images)
        with torch.no_grad():
            logits = tiny_bundle.model(**tiny_bundle.model_inputs([full])).logits[0].float()
        scale = params.temperature if not params.greedy else 1.0
        logprobs = torch.log_softmax(logits / scale, dim=-1)
        start = len(prompt.token_ids) - 1
        expected = [logprobs[start + i, token].item() for i, token in enumerate(completion.token_ids)]
        assert completion.logprobs == pytest.approx(expected, abs=1e-4)


def test_length_limit_is_reported(engine, mixed_requests):
    completion = engine.generate([mixed_requests[1]], SamplingParams(max_new_tokens=5, temperature=0))[0]
    assert completion.finish_reason == "length" and len(completion.token_ids) == 5 == len(completion.logprobs)
    assert completion.stop_string is None


def test_a_stop_string_ends_generation_right_after_it(engine, tiny_bundle, mixed_requests):
    free = engine.generate([mixed_requests[1]], GREEDY)[0]
    stop = free.text[6:10]  # some text from the middle of what the model writes
    assert stop.strip(), free.text
    stopped = engine.generate(
        [mixed_requests[1]], SamplingParams(max_new_tokens=20, temperature=0, stop=(stop,))
    )[0]
    assert stopped.finish_reason == "stop" and stopped.stop_string == stop
    assert stopped.text.endswith(stop) and stopped.text.count(stop) == 1
    assert free.text.startswith(stopped.text)
    assert stopped.token_ids == free.token_ids[: len(stopped.token_ids)]
    assert stop in tiny_bundle.tokenizer.decode(stopped.token_ids)
    assert stop not in tiny_bundle.tokenizer.decode(stopped.token_ids[:-1])


def test_rows_stop_independently(engine, mixed_requests):
    free = engine.generate(mixed_requests, GREEDY)
    stop = free[1].text[4:8]
    stopped = engine.generate(mixed_requests, SamplingParams(max_new_tokens=20, temperature=0, stop=(stop,)))
    assert stopped[1].stop_string == stop
    for before, after in zip(free, stopped):
        if stop not in before.text:
            assert after.token_ids == before.token_ids


def test_same_seed_same_samples_other_seed_other_samples(engine, mixed_requests):
    def sample(seed):
        return [
            c.token_ids
            for c in engine.generate(mixed_requests, SamplingParams(24, temperature=1.0, seed=seed))
        ]

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def test_a_bad_request_fails_alone(engine, mixed_requests):
    broken = GenerationRequest(messages=[{"role": "user", "content": [{"type": "image"}]}], images=[])
    completions = engine.generate([mixed_requests[2], broken], GREEDY)
    assert completions[0].finish_reason == "length" and completions[0].token_ids
    assert completions[1].finish_reason == "error" and "image" in completions[1].error


def test_token_in_requests_equal_message_requests(engine, tiny_bundle, mixed_requests):
    prompt = tiny_bundle.encode_messages(mixed_requests[0].messages, mixed_requests[0].images)
    by_ids = engine.generate([GenerationRequest.from_prompt(prompt)], GREEDY)[0]
    assert by_ids.token_ids == engine.generate([mixed_requests[0]], GREEDY)[0].token_ids


# --- `</code>`: a model taught to write a code block, then asked to stop at its end -----------------

CODE_TURN = "<think>count</think><code>\n```python\nprint(3)\n```\n</code> then more text<|im_end|>"


@pytest.fixture(scope="module")
def code_writer(tiny_model_dir):
    """The tiny model overfitted on one conversation whose answer contains a code block."""
    bundle = load_model_bundle(tiny_model_dir, device="cpu")
    prompt = bundle.encode_messages([{"role": "user", "content": "How many?"}])
    target = bundle.tokenizer.encode(CODE_TURN, add_special_tokens=False)
    inputs = bundle.model_inputs([EncodedPrompt(prompt.token_ids + target)])
    labels = inputs["input_ids"].clone()
    labels[:, : len(prompt.token_ids)] = -100
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(bundle.model.parameters(), lr=1e-2)
    bundle.model.train()
    for _ in range(60):
        optimizer.zero_grad()
        bundle.model(**inputs, labels=labels).loss.backward()
        optimizer.step()
    bundle.model.eval()
    return HFEngine(bundle), prompt


def test_generation_stops_right_after_code_close_tag(code_writer):
    engine, prompt = code_writer
    request = GenerationRequest.from_prompt(prompt)
    free = engine.generate([request], SamplingParams(max_new_tokens=40, temperature=0))[0]
    assert free.text == CODE_TURN.removesuffix("<|im_end|>")  # it learned the turn, end token included
    assert free.finish_reason == "stop" and free.stop_string is None
    stopped = engine.generate([request], SamplingParams(max_new_tokens=40, temperature=0, stop=("</code>",)))[
        0
    ]
    assert stopped.text == "<think>count</think><code>\n```python\nprint(3)\n```\n</code>"
    assert stopped.stop_string == "</code>" and stopped.finish_reason == "stop"
    close_tag = engine.bundle.tokenizer.convert_tokens_to_ids("</code>")
    assert stopped.token_ids[-1] == close_tag and stopped.token_ids.count(close_tag) == 1
    assert len(stopped.logprobs) == len(stopped.token_ids)


def test_engines_over_one_model_share_its_lock(tiny_bundle, code_writer):
    """Generation keeps state on the model module, so two engines over it must not run at once."""
    assert HFEngine(tiny_bundle)._lock is HFEngine(tiny_bundle)._lock
    assert code_writer[0]._lock is not HFEngine(tiny_bundle)._lock  # another model, another lock


# --- work not repeated across turns: vision embeddings, stop-string candidates ---------------------


def test_cached_image_embeddings_give_the_same_completions(tiny_bundle, mixed_requests):
    fresh = HFEngine(tiny_bundle, reuse_image_embeddings=False).generate(mixed_requests, GREEDY)
    cached = HFEngine(tiny_bundle)
    first = cached.generate(mixed_requests, GREEDY)
    misses, hits = cached.vision_cache.misses, cached.vision_cache.hits
    again = cached.generate(mixed_requests, GREEDY)  # the same two image objects: no tower run
    assert (cached.vision_cache.misses, cached.vision_cache.hits) == (misses, hits + 2)
    for reference, *others in zip(fresh, first, again):
        for other in others:
            assert other.token_ids == reference.token_ids
            assert other.logprobs == pytest.approx(reference.logprobs, abs=1e-4)


def test_a_new_image_object_is_encoded_and_a_known_one_is_not(tiny_bundle):
    engine = HFEngine(tiny_bundle)
    request = image_request("How many circles?", (10, 200, 30))
    engine.generate([request], GREEDY)
    misses = engine.vision_cache.misses
    engine.generate([request, request], GREEDY)
    assert engine.vision_cache.misses == misses
    engine.generate([image_request("How many circles?", (10, 200, 30))], GREEDY)
    assert engine.vision_cache.misses == misses + 1


def test_a_weight_update_invalidates_cached_image_embeddings(tiny_model_dir):
    bundle = load_model_bundle(tiny_model_dir, device="cpu", dtype="float32")  # we change its weights
    engine = HFEngine(bundle)
    request = image_request("Read the chart.", (0, 128, 255))
    engine.generate([request], GREEDY)
    with torch.no_grad():
        for parameter in bundle.model.model.visual.parameters():
            parameter.mul_(1.5)  # in place, as an optimizer step does
    misses = engine.vision_cache.misses
    after = engine.generate([request], GREEDY)[0]
    assert engine.vision_cache.misses == misses + 1
    reference = HFEngine(bundle, reuse_image_embeddings=False).generate([request], GREEDY)[0]
    assert after.logprobs == pytest.approx(reference.logprobs, abs=1e-4)


def test_stop_candidates_are_the_tokens_that_can_end_a_stop_string(tiny_bundle):
    tokenizer = tiny_bundle.tokenizer
    mask = stop_candidates(tokenizer, ["</code>"])
    close_tag = tokenizer.convert_tokens_to_ids("</code>")
    assert mask[close_tag]
    for token in tokenizer.encode("abc 123 def", add_special_tokens=False):
        assert not mask[token]
    assert 0 < int(mask.sum()) < mask.numel()
