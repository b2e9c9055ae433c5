"""Loading a model directory, tiny or real, into one `ModelBundle`.

One loader for both on purpose: the tiny model is written by `save_pretrained`, so reading it is
the exact `from_pretrained` path a Qwen2.5-VL-7B-Instruct checkpoint takes, and a bug in that path
shows up in the CPU tests, not first on a GPU node.

The bundle's chat template is ours (see `tokenizer.CHAT_TEMPLATE`) unless asked otherwise: it
writes the Qwen2.5 turn format token for token for system/user/assistant, and renders tool
observations the CodeDance way, which the stock Qwen template does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoTokenizer, PreTrainedTokenizerBase, Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from codedance_core.models.check import check_model_dir
from codedance_core.models.images import load_image_processor
from codedance_core.models.inputs import (
    EncodedPrompt,
    PixelCache,
    collate_prompts,
    encode_messages,
    encode_text_with_images,
)
from codedance_core.models.tokenizer import CHAT_TEMPLATE, END_OF_TEXT, IM_END, IMAGE_PAD


@dataclass
class ModelBundle:
    """A loaded model with everything needed to turn conversations into its inputs."""

    model: Qwen2_5_VLForConditionalGeneration
    tokenizer: PreTrainedTokenizerBase
    image_processor: Qwen2VLImageProcessorPil
    chat_template: str
    path: Path
    pixel_cache: PixelCache = field(default_factory=PixelCache)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def image_token_id(self) -> int:
        return int(self.model.config.image_token_id)

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.convert_tokens_to_ids(END_OF_TEXT))

    @property
    def eos_token_ids(self) -> list[int]:
        """Tokens that end an assistant turn: `<|im_end|>`, `<|endoftext|>` and the generation config's."""
        ids = {
            self.tokenizer.convert_tokens_to_ids(IM_END),
            self.tokenizer.convert_tokens_to_ids(END_OF_TEXT),
        }
        configured = self.model.generation_config.eos_token_id
        ids.update(
            configured if isinstance(configured, list) else [configured] if configured is not None else []
        )
        return sorted(int(token) for token in ids if token is not None)

    def encode_messages(
        self, messages: Sequence[dict], images: Sequence[Image.Image] = (), add_generation_prompt: bool = True
    ) -> EncodedPrompt:
        """Token ids (image pads expanded) of a conversation; image parts take `images` in order."""
        return encode_messages(
            self.tokenizer, self.image_processor, messages, images, self.chat_template, add_generation_prompt
        )

    def encode_text(self, text: str, images: Sequence[Image.Image] = ()) -> list[int]:
        """Token ids of already-templated text (e.g. an observation turn) with its images' pads expanded."""
        return encode_text_with_images(self.tokenizer, self.image_processor, text, images)

    def model_inputs(self, prompts: Sequence[EncodedPrompt]) -> dict[str, torch.Tensor]:
        """Left-padded tensors for a batch, on the model's device, pixels in the model's dtype.
        Images already processed for an earlier batch (the same PIL objects) are not processed again."""
        return collate_prompts(
            prompts,
            self.image_processor,
            self.pad_token_id,
            self.image_token_id,
            self.device,
            self.dtype,
            pixel_cache=self.pixel_cache,
        )


def resolve_device(device: str) -> torch.device:
    """'auto' is the first GPU when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' is bfloat16 on GPU and float32 on CPU (CPU bf16 matmuls are slow and imprecise)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def load_model_bundle(
    path: str | Path,
    device: str = "auto",
    dtype: str = "auto",
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    chat_template: str | None = None,
) -> ModelBundle:
    """Load model, tokenizer and image processor from a directory written by `save_pretrained`.

    `chat_template`: None uses the CodeDance template; "checkpoint" keeps the directory's own.
    The model is put in eval mode; callers that train switch it back.
    """
    path = check_model_dir(path)  # a missing or truncated file is named here, not deep in from_pretrained
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    tokenizer = AutoTokenizer.from_pretrained(str(path), padding_side="left")
    if tokenizer.convert_tokens_to_ids(IMAGE_PAD) in (None, tokenizer.unk_token_id):
        raise ValueError(f"{path}: tokenizer has no {IMAGE_PAD} token; not a Qwen2.5-VL model")
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(path), dtype=torch_dtype)
    model.to(torch_device).eval()
    template = tokenizer.chat_template if chat_template == "checkpoint" else chat_template or CHAT_TEMPLATE
    processor = load_image_processor(path, min_pixels=min_pixels, max_pixels=max_pixels)
    return ModelBundle(model, tokenizer, processor, template, path)
