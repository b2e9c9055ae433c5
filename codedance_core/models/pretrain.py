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
- Every one of these skills is a phase change whose step depends on the draw: three bases built
  with the same code copied the question's slots in real SFT trajectories 1.00, 0.96 and 0.68 of
  the time. So the first phase can check the copy probe (models/copy_probe.py) every
  `pretrain_probe_every` steps and end once the gating forms pass, with `pretrain_text_steps` as
  the cap; the checks are saved beside the model (`PROBE_FILE`).

At the test fixtures' init of 0.2 even plain positional copying did not form (see
`EXPERIMENT_OVERRIDES`). The conversations themselves are built in models/copy_texts.py.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from codedance_core.config.model import TinyModelConfig
from codedance_core.models.copy_probe import copy_accuracy
from codedance_core.models.copy_texts import (
    COPY_FORMS,
    FILLER,
    copy_conversation,
    random_earlier_lines,
    random_printout,
    row_image,
)
from codedance_core.models.inputs import EncodedPrompt
from codedance_core.models.tokenizer import IM_START

log = logging.getLogger(__name__)

IGNORE_INDEX = -100

# The file in the model's folder that records the copy probe's checks.
PROBE_FILE = "copy_probe.json"


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


@dataclass
class PretrainRecord:
    """What a pretraining did: the loss of every step, the first phase's length, the copy probe's checks.

    `checks`: one per `pretrain_probe_every` steps of the first phase, `{"step": n, form: share}`;
    `passed_at`: the step at which the gating forms reached the target (None: never, or no probe);
    `with_image`: the probe once more at the end, with the image in the prompt, as SFT will see it.
    """

    losses: list[float] = field(default_factory=list)
    text_steps: int = 0
    target: float | None = None
    checks: list[dict[str, float]] = field(default_factory=list)
    passed_at: int | None = None
    with_image: dict[str, float] = field(default_factory=dict)

    def save(self, model_dir: str | Path) -> Path:
        """Write everything but the losses to `PROBE_FILE` in the model's folder."""
        record = {key: value for key, value in asdict(self).items() if key != "losses"}
        path = Path(model_dir) / PROBE_FILE
        path.write_text(json.dumps(record, indent=2))
        return path


def pretrain(
    bundle: Any, rows: list[dict[str, Any]], config: TinyModelConfig, probe_rows: Sequence[dict[str, Any]] = ()
) -> PretrainRecord:
    """Train `bundle.model` in place as a causal LM on the rows' copy conversations: first up to
    `pretrain_text_steps` without the image, then `pretrain_steps` with it (see the module's
    docstring). Only the reply carries loss, as in SFT: on the whole conversation the constant
    system prompt and the unpredictable question outweighed the few slot tokens where copying pays,
    and the model learnt the template instead.

    With `probe_rows` and `pretrain_probe_every`, the first phase checks the copy probe on them
    every that many steps and ends as soon as each of `pretrain_probe_forms` copies
    `pretrain_probe_target` of them:
    when copying forms is a draw, so the steps it needs are checked, not guessed.
    """
    rng = random.Random(config.seed)
    record = PretrainRecord()
    check = None
    if probe_rows and config.pretrain_probe_every:
        record.target = config.pretrain_probe_target

        def check(step: int) -> bool:
            shares = copy_accuracy(bundle, probe_rows, with_image=False)
            record.checks.append({"step": step, **shares})
            log.info("copy probe after %d steps: %s", step, shares)
            if all(shares[form] >= config.pretrain_probe_target for form in config.pretrain_probe_forms):
                record.passed_at = step
            return record.passed_at is not None

    record.losses = train_phase(
        bundle, rows, config.pretrain_text_steps, config.pretrain_learning_rate, config, rng, False,
        check=check, check_every=config.pretrain_probe_every,
    )
    record.text_steps = len(record.losses)  # fewer than asked when the probe passed early
    if check is not None and record.passed_at is None:
        log.warning(
            "the copy probe never reached %.2f in %d steps: %s",
            config.pretrain_probe_target, config.pretrain_text_steps, record.checks[-1] if record.checks else {},
        )
    record.losses += train_phase(bundle, rows, config.pretrain_steps, config.pretrain_image_learning_rate, config, rng, True)
    if probe_rows:
        record.with_image = copy_accuracy(bundle, probe_rows, with_image=True)
    bundle.model.eval()
    return record


def train_phase(
    bundle: Any,
    rows: list[dict[str, Any]],
    steps: int,
    peak_lr: float,
    config: TinyModelConfig,
    rng: random.Random,
    with_image: bool,
    check: Callable[[int], bool] | None = None,
    check_every: int = 0,
) -> list[float]:
    """Up to `steps` AdamW steps (linear warmup, then cosine to zero) on batches sampled from `rows`;
    with `check`, it is called every `check_every` steps (and after the last) and a True ends the
    phase there. The schedule stays the one over `steps`, so an early end keeps a high lr.

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
        done = step + 1
        due = check is not None and check_every and (done % check_every == 0 or done == steps)
        if due and check(done):
            break
    bar.close()
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
