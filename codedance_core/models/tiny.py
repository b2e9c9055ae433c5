"""Building the tiny Qwen2.5-VL: real architecture, random weights, a tokenizer fitted to the suite.

The `tiny` profile trains this model from scratch on CPU. It is the genuine
`Qwen2_5_VLForConditionalGeneration` (vision tower with window attention, patch merger, M-RoPE),
only narrow and shallow, so the engines, the loop and the trainers run the 7B's code paths in
milliseconds. It is saved with `save_pretrained` and read back with `load_model_bundle`, the same
function that loads a real checkpoint.

The tokenizer corpus is the task suite's text (questions, answers, prompts) plus code of the kind
trajectories contain (crop, zoom, count, print with PIL/numpy/cv2), so the vocabulary covers what
the model will read and write.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from codedance_core.config.model import TinyModelConfig
from codedance_core.models.images import MERGE_SIZE, PATCH_SIZE, build_image_processor
from codedance_core.models.tokenizer import (
    END_OF_TEXT,
    IM_END,
    IMAGE_PAD,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    control_token_ids,
    train_tokenizer,
)

if TYPE_CHECKING:
    from codedance_core.models.pretrain import PretrainRecord


def mrope_sections(head_dim: int) -> list[int]:
    """Split of the rotary half-dimension into (temporal, height, width), in Qwen's 1:1.5:1.5 ratio."""
    half = head_dim // 2
    temporal = half // 4
    height = (half - temporal) // 2
    return [temporal, height, half - temporal - height]


def tiny_qwen_config(config: TinyModelConfig, vocab_size: int, token_ids: dict[str, int]) -> Qwen2_5_VLConfig:
    """The transformers config of the tiny model for a tokenizer of `vocab_size` with these control ids."""
    text_config = {
        "vocab_size": vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.text_layers,
        "num_attention_heads": config.attention_heads,
        "num_key_value_heads": config.kv_heads,
        "max_position_embeddings": config.max_position_embeddings,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            "mrope_section": mrope_sections(config.head_dim),
        },
        "bos_token_id": token_ids[END_OF_TEXT],
        "eos_token_id": token_ids[IM_END],
        "pad_token_id": token_ids[END_OF_TEXT],
        "tie_word_embeddings": config.tie_word_embeddings,
        "initializer_range": config.initializer_range,
    }
    vision_config = {
        "depth": config.vision_depth,
        "hidden_size": config.vision_hidden_size,
        "intermediate_size": config.vision_intermediate_size,
        "num_heads": config.vision_heads,
        "out_hidden_size": config.hidden_size,
        "patch_size": PATCH_SIZE,
        "spatial_merge_size": MERGE_SIZE,
        "temporal_patch_size": 2,
        # Last block attends globally, the others within windows: the 7B's pattern, scaled down.
        "fullatt_block_indexes": [config.vision_depth - 1],
        "window_size": 112,
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=token_ids[IMAGE_PAD],
        video_token_id=token_ids[VIDEO_PAD],
        vision_start_token_id=token_ids[VISION_START],
        vision_end_token_id=token_ids[VISION_END],
        tie_word_embeddings=config.tie_word_embeddings,
        initializer_range=config.initializer_range,
    )


def build_tiny_model(
    out_dir: str | Path,
    corpus: Iterable[str],
    config: TinyModelConfig | None = None,
    *,
    vocab_size: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Train the tokenizer on `corpus`, build the random-weight model (pretrained on copy texts when
    `config` asks for pretraining steps), save model, tokenizer and image processor; returns out_dir.

    `vocab_size` widens the embeddings and LM head past the tokenizer, as real checkpoints are
    (Qwen2.5's head has 151,936 rows), so a GPU-sized model pays the real head's cost; `device` and
    `dtype` are where the weights are initialised and how they are saved."""
    config = config or TinyModelConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(corpus, config.vocab_size)
    token_ids = control_token_ids(tokenizer)
    torch.manual_seed(config.seed)
    width = max(vocab_size or 0, len(tokenizer))
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(tiny_qwen_config(config, width, token_ids)).to(dtype)
    model.generation_config = GenerationConfig(
        eos_token_id=[token_ids[IM_END], token_ids[END_OF_TEXT]],
        pad_token_id=token_ids[END_OF_TEXT],
        bos_token_id=token_ids[END_OF_TEXT],
    )
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    build_image_processor(config.min_pixels, config.max_pixels).save_pretrained(str(out_dir))
    if config.pretrain_text_steps or config.pretrain_steps:
        pretrain_for_copying(out_dir, config)
    return out_dir


def pretrain_for_copying(model_dir: Path, config: TinyModelConfig) -> PretrainRecord:
    """Pretrain the saved model on `config.pretrain_rows` suite items (see models/pretrain.py),
    checking the copy probe on `pretrain_probe_rows` held-out ones, and save it again with the
    probe's record beside it (`copy_probe.json`). It goes through the bundle because the prompts
    hold images."""
    from codedance_core.config.data import SuiteSpec
    from codedance_core.data.suite import generate_rows
    from codedance_core.models.bundle import load_model_bundle
    from codedance_core.models.pretrain import pretrain

    bundle = load_model_bundle(model_dir, device="cpu", dtype="float32")
    rows = list(generate_rows(SuiteSpec(n=config.pretrain_rows, seed=config.seed, split="train")))
    probe_rows = list(generate_rows(SuiteSpec(n=config.pretrain_probe_rows, seed=config.seed, split="test")))
    record = pretrain(bundle, rows, config, probe_rows)
    bundle.model.save_pretrained(str(model_dir))
    record.save(model_dir)
    return record


def parameter_count(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied embeddings counted once)."""
    return sum(parameter.numel() for parameter in model.parameters())


# Code of the kind CodeDance trajectories contain, so the vocabulary has pieces for it.
_CODE_TEMPLATES = [
    (
        "from PIL import Image\nimport numpy as np\nimg = input_image.crop(({x0}, {y0}, {x1}, {y1}))\n"
        "img = img.resize((img.width * {k}, img.height * {k}))\nimg.show()"
    ),
    (
        "import numpy as np\narr = np.array(input_image)\nmask = (arr[:, :, 0] > {t}) & (arr[:, :, 1] < {t})\n"
        "print(int(mask.sum()))"
    ),
    (
        "import cv2\nimport numpy as np\ngray = cv2.cvtColor(np.array(input_image), cv2.COLOR_RGB2GRAY)\n"
        "_, binary = cv2.threshold(gray, {t}, 255, cv2.THRESH_BINARY)\n"
        "contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)\n"
        "print(len(contours))"
    ),
    (
        "from PIL import ImageDraw\ndraw = ImageDraw.Draw(input_image)\n"
        "draw.rectangle(({x0}, {y0}, {x1}, {y1}), outline='red', width={k})\ninput_image.show()"
    ),
    "import matplotlib.pyplot as plt\nplt.imshow(input_image)\nplt.axis('off')\nplt.show()",
    "width, height = input_image.size\nprint(width, height)\nprint({x0} + {y0} * {k})",
]


def code_snippets(n: int, seed: int = 0) -> Iterator[str]:
    """`n` CodeDance-style turns: think, code wrapped in <code>```python```</code>, an observation."""
    rng = random.Random(seed)
    for _ in range(n):
        values = {
            "x0": rng.randint(0, 200),
            "y0": rng.randint(0, 200),
            "x1": rng.randint(200, 448),
            "y1": rng.randint(200, 448),
            "k": rng.randint(2, 4),
            "t": rng.randint(50, 200),
        }
        code = rng.choice(_CODE_TEMPLATES).format(**values)
        yield (
            f"<think>Let me look closer.</think>\n<code>\n```python\n{code}\n```\n</code>\n"
            f"<tool_response>\n{rng.randint(0, 50)}\n</tool_response>\n<answer>{rng.randint(0, 50)}</answer>"
        )


def suite_corpus(rows: int = 2000, seed: int = 0, workers: int = 1) -> Iterator[str]:
    """Text of `rows` task-suite rows (prompt messages, question, answer) and as many code snippets.

    The suite renders each item's image too (it is one function of the item's seed): about 12 ms
    a row per worker.
    """
    from codedance_core.config.data import SuiteSpec
    from codedance_core.data.suite import generate_rows

    for row in generate_rows(SuiteSpec(n=rows, seed=seed, split="train"), workers=workers):
        for message in row["prompt"]:
            content = message["content"]
            yield content if isinstance(content, str) else " ".join(str(part) for part in content)
        extra = row["extra_info"]
        yield f"<think>{extra['question']}</think>\n<answer>{extra['answer']}</answer>"
    yield from code_snippets(rows, seed)
    for _ in range(rows // 10):
        yield CHAT_ROLES_TEXT


# Role headers, seen often enough that 'system', 'user', 'assistant' become single pieces.
CHAT_ROLES_TEXT = "system\nuser\nassistant\ntool\n"
