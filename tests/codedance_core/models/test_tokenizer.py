"""The locally trained tokenizer: control tokens, single-token tags, lossless text, the chat template."""

from __future__ import annotations

import pytest

from codedance_core.models.tokenizer import (
    CHAT_TEMPLATE,
    SPECIAL_TOKENS,
    TAG_TOKENS,
    control_token_ids,
    train_tokenizer,
)

CORPUS = ["How many red circles are there? <answer>3</answer>", "print(input_image.size)\n"] * 50


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CORPUS, vocab_size=600)


@pytest.mark.parametrize("tag", TAG_TOKENS)
def test_every_tag_is_one_token_that_decoding_keeps(tokenizer, tag):
    ids = tokenizer.encode(f"x{tag}y", add_special_tokens=False)
    assert tokenizer.convert_tokens_to_ids(tag) in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == f"x{tag}y"


def test_control_tokens_are_special_and_skipped_when_asked(tokenizer):
    ids = control_token_ids(tokenizer)
    assert list(ids) == SPECIAL_TOKENS
    assert len(set(ids.values())) == len(SPECIAL_TOKENS)
    text = "<|im_start|>user\nhi<|im_end|>"
    assert tokenizer.decode(tokenizer.encode(text), skip_special_tokens=True) == "user\nhi"
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"


@pytest.mark.parametrize("text", ["naïve café ∑ 🙂", "x = [1, 2]\n\tprint(x)  # done", "\x00\x07 binary-ish"])
def test_any_text_round_trips_byte_for_byte(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


def test_chat_template_writes_qwen_turns_images_and_tool_observations(tokenizer):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Count."}]},
        {"role": "assistant", "content": "<code>\n```python\nprint(1)\n```\n</code>"},
        {"role": "tool", "content": "1"},
    ]
    text = tokenizer.apply_chat_template(
        messages, chat_template=CHAT_TEMPLATE, tokenize=False, add_generation_prompt=True
    )
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Count.<|im_end|>\n"
        "<|im_start|>assistant\n<code>\n```python\nprint(1)\n```\n</code><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n1\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_control_token_ids_names_the_missing_token():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    bare = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.BPE(unk_token="[UNK]")), unk_token="[UNK]"
    )
    with pytest.raises(KeyError, match="<|endoftext|>"):
        control_token_ids(bare)
