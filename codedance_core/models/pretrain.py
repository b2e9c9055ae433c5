"""A short pretraining of the tiny model, meant to make it arrive at SFT able to copy.

A real policy starts from a pretrained checkpoint that can already repeat what it read. A
random-weight model cannot, and SFT on a few hundred trajectories does not teach it. Measured on
the tiny profile: after SFT, the model's next token after "The note itself says the kite is" had
the same distribution whatever colour the note named. It wrote the template and made up the slot
(a count of the wrong colour, a note's wrong colour).

So the tiny model is pretrained on suite items in the policy's own chat format (system prompt,
image, question, instruction), answered by a reply that copies (`COPY_FORMS`): the question in
a thought, the question as a string in a script's opening, or a value from a tool turn as the
answer. Only the last reply carries loss. What the copy probe measured (teacher-forced accuracy
on the colour and kind words of held-out count items, 2 layers of width 128, init 0.02, batch 8):
- With the image in every prompt from the start, the slots stayed at 0.55-0.65 after 800 steps
  at lr 3e-3: the template was learnt, the slots were guessed ("red shapes" came back "orange
  shapes"). 144 image tokens dilute the attention that copying has to learn.
- Without the image, a thought right after `<think>` was copied exactly after 300 of 600 steps
  (lr 3e-3, cosine). That model copied 0.78 of the slots with the image in the prompt, never
  having seen one, and 1.00 after 50 more steps with the image at lr 1e-3. Hence two phases:
  `pretrain_text_steps` without the image, then `pretrain_steps` with it at the gentler
  `pretrain_image_learning_rate`.
- But it had learnt to copy from a fixed distance back, not to find the question's words. With
  another SFT thought (of another length) before the script's copy of the question, it got 0.27
  of the slots; with 0-6 random filler sentences before the copy in pretraining, 600 steps
  taught no copying at all (0.34). With the fillers and 3000 steps it copied in every form
  (1.00), and 0.97 in the SFT scripts (0.49 behind a thought of another length).
- The phase change depends on the random init: from init seed 1, 600 steps copied the colours
  but not the kinds (0.07-0.17 through 1200 steps, and at batch 16).
- SFT (8 epochs at 3e-3) keeps part of it: from 0.92 to 0.68 of the script's slots on held-out
  trajectories, and the count scripts of a tool SFT model repeated all 10 test questions right.
  That model had not been pretrained on the tool-output form, and answered 5 whatever its code
  printed; hence that form.
- That form taught words (colours, letters, yes/no were copied 0.9-1.0 of the time, teacher-forced)
  but not numbers: with one printout in four a number from 0-99, the base copied 0 of 12, and
  1200 more steps at lr 1e-3 taught none. At lr 3e-3 with half the printouts small numbers,
  copying numbers appeared between 450 and 750 steps (a phase change again) and reached 1.00.
  Hence half of `random_printout` is numbers, mostly 0-20 like the suite's counts.
- A chart script prints its marks before its letter; a base pretrained on one-line printouts
  copied the number where the letter was due (3 of 16 chart answers). With 0-2 earlier lines
  (`random_earlier_lines`) and 4500 text steps: 12 of 16 chart letters and 12 of 35 count numbers
  on real synthesised trajectories with the image (text-only, short form: 31 of 40 numbers). The
  numbers do not yet carry over to the long counting script as well as they do to the short form.

At the test fixtures' init of 0.2 even plain positional copying did not form (see
`EXPERIMENT_OVERRIDES`).
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from PIL import Image
from tqdm.auto import tqdm

from codedance_core.agent.messages import to_model_messages
from codedance_core.agent.observation import format_observation
from codedance_core.agent.prompts import initial_messages
from codedance_core.config.model import TinyModelConfig
from codedance_core.data.suite.canvas import COLOURS
from codedance_core.models.inputs import EncodedPrompt
from codedance_core.models.tokenizer import IM_START
from codedance_core.sandbox.result import ExecResult
from codedance_core.synthesis.shapes import IMPORTS, SCRIPT_THOUGHT, printed_thought, question_line

IGNORE_INDEX = -100

COPY_FORMS = ("thought", "code", "output")

# Sentences put before the copy in random number, so that the distance from the question to its
# copy varies: at a fixed distance the model learnt to copy from a fixed offset, which any other
# text in between (an SFT thought of another length) broke.
FILLER = (
    "I look at the question first.",
    "The image may help here.",
    "I write code for this.",
    "Let me read the question again.",
    "Code can measure what I cannot see.",
    "I keep the question's words.",
)


def copy_conversation(
    row: dict[str, Any],
    with_image: bool = True,
    form: str = "thought",
    filler: str = "",
    printed: str = "0",
    earlier: str = "",
) -> list[dict[str, Any]]:
    """A suite row as the policy sees it, answered by a reply that copies, after `filler`:
    - "thought": the question, repeated in a thought;
    - "code": the question's first line, as a string in the opening of a script;
    - "output": `printed`, the last value of the tool turn that follows that script (after the
      lines `earlier`, as a chart script prints its marks before its answer), as the answer.
    Only the last reply carries loss (`reply_labels`)."""
    extra = row["extra_info"]
    question, answer = extra["question"], extra["answer"]
    lead = f"{filler}\n" if filler else ""
    # The opening of the shape and chart scripts, which repeat the question as a string.
    script = IMPORTS + question_line(question)
    code_turn = f"<think>\n{lead}{SCRIPT_THOUGHT}\n</think>\n<code>\n```python\n{script}```\n</code>"
    messages = initial_messages(question, with_image=with_image)
    if form == "thought":
        messages.append({"role": "assistant", "content": f"<think>\n{lead}{question}\n</think>\n<answer>{answer}</answer>"})
    elif form == "code":
        messages.append({"role": "assistant", "content": code_turn})
    elif form == "output":
        name = "count" if printed.isdigit() else "answer"
        # Rendered by the one observation formatter, so it matches SFT and rollouts token for token.
        observation = format_observation(ExecResult(status="ok", stdout=f"{earlier}{name}: {printed}\n"))
        messages += [
            {"role": "assistant", "content": code_turn},
            {"role": "tool", "content": observation.text},
            {"role": "assistant", "content": f"<think>\n{lead}{printed_thought(printed)}\n</think>\n<answer>{printed}</answer>"},
        ]
    else:
        raise ValueError(f"unknown copy form {form!r}; expected one of {COPY_FORMS}")
    return to_model_messages(messages)


def random_printout(rng: random.Random) -> str:
    """What a script might print: half the time a number, mostly a small count (see the module's
    docstring for why numbers get that share), else a colour, an option letter or a yes/no."""
    if rng.random() < 0.5:
        return str(rng.randint(0, 20) if rng.random() < 0.75 else rng.randint(0, 99))
    kind = rng.randrange(3)
    if kind == 0:
        return rng.choice(COLOURS)
    return rng.choice("ABCDE") if kind == 1 else rng.choice(("yes", "no"))


def random_earlier_lines(rng: random.Random) -> str:
    """0-2 lines of numbers a script might print before its answer, each ending in a newline."""
    return "".join(f"{rng.choice(('marks', 'total', 'width'))}: {rng.randint(0, 20)}\n" for _ in range(rng.randint(0, 2)))


def row_image(row: dict[str, Any]) -> Image.Image:
    """The row's (first) image, decoded."""
    return Image.open(io.BytesIO(row["images"][0]["bytes"])).convert("RGB")


def copy_prompts(
    rows: Iterable[dict[str, Any]], bundle: Any, with_image: bool = True, rng: random.Random | None = None
) -> list[EncodedPrompt]:
    """Each row's copy conversation encoded, with its image (image pads expanded) or without.
    With `rng`, each takes a random form and 0-6 filler sentences; without, a bare thought."""
    prompts = []
    for row in rows:
        form, filler, printed, earlier = "thought", "", "0", ""
        if rng is not None:
            form, filler = rng.choice(COPY_FORMS), " ".join(rng.choices(FILLER, k=rng.randint(0, 6)))
            printed, earlier = random_printout(rng), random_earlier_lines(rng)
        images = [row_image(row)] if with_image else []
        messages = copy_conversation(row, with_image, form, filler, printed, earlier)
        prompts.append(bundle.encode_messages(messages, images, add_generation_prompt=False))
    return prompts


def pretrain(bundle: Any, rows: list[dict[str, Any]], config: TinyModelConfig) -> list[float]:
    """Train `bundle.model` in place as a causal LM on the rows' copy conversations: first
    `pretrain_text_steps` without the image, then `pretrain_steps` with it (see the module's
    docstring); returns the loss of every step. Only the reply carries loss, as in SFT: on the
    whole conversation the constant system prompt and the unpredictable question outweighed the
    few slot tokens where copying pays, and the model learnt the template instead.
    """
    rng = random.Random(config.seed)
    losses = train_phase(bundle, rows, config.pretrain_text_steps, config.pretrain_learning_rate, config, rng, False)
    losses += train_phase(bundle, rows, config.pretrain_steps, config.pretrain_image_learning_rate, config, rng, True)
    bundle.model.eval()
    return losses


def train_phase(
    bundle: Any,
    rows: list[dict[str, Any]],
    steps: int,
    peak_lr: float,
    config: TinyModelConfig,
    rng: random.Random,
    with_image: bool,
) -> list[float]:
    """`steps` AdamW steps (linear warmup, then cosine to zero) on batches sampled from `rows`.

    Rows are encoded batch by batch (decoding a 672 px PNG and tokenizing a conversation take a few
    ms), so a pretraining over thousands of items never holds their pixels all at once.
    """
    model = bundle.model
    reply_start = bundle.tokenizer.encode(f"{IM_START}assistant\n", add_special_tokens=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=peak_lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    losses: list[float] = []
    model.train()
    bar = tqdm(range(steps), desc=f"pretraining {'with' if with_image else 'without'} the image", leave=False)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = peak_lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        prompts = copy_prompts(rng.sample(rows, min(config.pretrain_batch_size, len(rows))), bundle, with_image, rng)
        inputs = bundle.model_inputs(prompts)
        loss = model(**inputs, labels=reply_labels(inputs["input_ids"], prompts, reply_start)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    return losses


def reply_labels(input_ids: torch.Tensor, prompts: Sequence[EncodedPrompt], reply_start: list[int]) -> torch.Tensor:
    """Labels for left-padded `input_ids`: each row's last reply (after its last `reply_start`)."""
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    width = input_ids.shape[1]
    for row, prompt in enumerate(prompts):
        ids = prompt.token_ids
        start = max(i for i in range(len(ids) - len(reply_start) + 1) if ids[i : i + len(reply_start)] == reply_start)
        offset = width - len(ids) + start + len(reply_start)
        labels[row, offset:] = input_ids[row, offset:]
    return labels
