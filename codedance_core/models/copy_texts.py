"""The conversations the tiny model is pretrained on to copy (models/pretrain.py), and probed with
(models/copy_probe.py): a suite item in the policy's own chat format, answered by a reply that
copies the question, or a value a tool printed, after a random filler."""

from __future__ import annotations

import io
import random
from typing import Any

from PIL import Image

from codedance_core.chat_format.messages import to_model_messages
from codedance_core.chat_format.observation import format_observation
from codedance_core.chat_format.prompts import initial_messages
from codedance_core.data.suite.canvas import COLOURS
from codedance_core.sandbox.result import ExecResult
from codedance_core.synthesis.shapes import IMPORTS, SCRIPT_THOUGHT, printed_thought, question_line

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
