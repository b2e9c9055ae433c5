"""The prompts, versioned: the texts the model is trained and evaluated with.

A prompt is part of the model's interface. Changing a word changes what a checkpoint was
trained on, so each prompt set has a version that is recorded with every trajectory and
becomes part of cache keys. Rows that carry their own system prompt (the released
CodeDance-RL data) keep it; ours is used only for data that has none. Our wording is our own;
the facts it states are the original's: the image is preloaded as `input_image` and saved as
`input_image.jpg`, code goes in `<code>` fenced blocks, the answer in `<answer>`.
"""

from __future__ import annotations

from dataclasses import dataclass

PROMPT_VERSION = "v1"


@dataclass(frozen=True)
class PromptSet:
    version: str
    system: str
    instruction: str
    answer_now: str
    image_placeholder: str = "<image>"


V1 = PromptSet(
    version="v1",
    system=(
        "You are a careful visual reasoning assistant. Work through the problem step by step. "
        "You can write Python to inspect the image: it is loaded for you as the PIL image "
        "`input_image`, and it is also saved as `input_image.jpg` in the working directory. "
        "numpy, PIL, cv2, scipy and matplotlib are available."
    ),
    instruction=(
        "Think inside <think></think>. To run code, write a complete script with its imports as "
        "<code>\n```python\n...\n```\n</code>; you will see what it prints and the images it shows. "
        "Give the final answer inside <answer></answer>."
    ),
    answer_now="You have used all your tool calls. Do not write code; give your final answer now inside <answer></answer>.",
)

PROMPTS: dict[str, PromptSet] = {V1.version: V1}


def get_prompts(version: str = PROMPT_VERSION) -> PromptSet:
    try:
        return PROMPTS[version]
    except KeyError:
        raise ValueError(f"unknown prompt version {version!r}; known: {', '.join(PROMPTS)}") from None


def user_text(question: str, prompts: PromptSet = V1, with_image: bool = True) -> str:
    """The user turn's text: the image placeholder, the question, then the instruction."""
    head = prompts.image_placeholder if with_image else ""
    return f"{head}{question.strip()}\n\n{prompts.instruction}"
