"""A byte-level BPE tokenizer trained locally, with the tokens and chat template the tool loop needs.

Why train one: no hub is reachable, and the tiny profile learns from scratch anyway, so a
vocabulary of a few thousand pieces fitted to the task suite keeps the embedding matrix (most of a
tiny model's parameters) small while sequences stay short.

Why these tokens: the Qwen2.5-VL control tokens (`<|im_start|>`, `<|image_pad|>`, ...) keep the
exact turn format of the real model, so the same loop drives the 7B. The tag tokens (`<think>`,
`<code>`, `</code>`, ...) are single added tokens: a stop string like `</code>` then ends exactly
on a token boundary and the loss mask of an observation starts and ends on whole tokens. They are
*not* special tokens, so decoding never drops them.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

END_OF_TEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"

# Control tokens: special (skipped when decoding with skip_special_tokens=True).
SPECIAL_TOKENS = [END_OF_TEXT, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD]
# Turn-structure tags of the CodeDance format: single tokens, but ordinary text when decoded.
TAG_TOKENS = [
    "<think>",
    "</think>",
    "<code>",
    "</code>",
    "<answer>",
    "</answer>",
    "<tool_response>",
    "</tool_response>",
    "<tool_call>",
    "</tool_call>",
]

# Qwen2.5 turn format. Content is a string or a list of parts; an image part (`{"type": "image"}`,
# or OpenAI's `image_url`) becomes one `<|image_pad|>` that the encoder expands to the image's
# token count. A tool message is an observation: a user turn wrapped in <tool_response>
# (docs/method.md §2). No default system prompt: the prompts are versioned configuration
# (`codedance_core.chat_format.prompts`), and a row either carries its own or gets ours.
CHAT_TEMPLATE = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{- content -}}"
    "{%- else -%}{%- for part in content -%}"
    "{%- if part.type == 'image' or part.type == 'image_url' -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part.type == 'text' -%}{{- part.text -}}"
    "{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'tool' -%}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + render(message.content) + '\\n</tool_response><|im_end|>\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message.role + '\\n' + render(message.content) + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def train_tokenizer(corpus: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `corpus` and wrap it as a transformers tokenizer with the chat template.

    Every byte is in the initial alphabet, so any text (code, unicode, garbage) encodes losslessly.
    """
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(TAG_TOKENS),
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    bpe.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in TAG_TOKENS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=IM_END,
        pad_token=END_OF_TEXT,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def control_token_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    """Ids of the control tokens the model config and the loop need, by token text.

    Raises KeyError naming the token when a tokenizer (e.g. of a foreign checkpoint) lacks one.
    """
    ids = {}
    for token in SPECIAL_TOKENS:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise KeyError(f"tokenizer has no token {token!r}: not a Qwen2.5-VL-compatible tokenizer")
        ids[token] = token_id
    return ids
