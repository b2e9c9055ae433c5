"""The prompts, versioned: the one place their text lives.

A prompt is part of the model's interface: changing a word changes what a checkpoint was
trained on, so each prompt set has a version recorded with every row and trajectory, and part
of cache keys. Rows that carry their own system prompt (the released CodeDance-RL data) keep
it; ours is used for data that has none. The wording is ours; the facts it states are those of
the original evaluation prompt (docs/method.md §2): solve step by step, Python may be
written, the image is preloaded as the PIL object `input_image` and saved as the file
`input_image.jpg`; code goes in `<code>` fenced blocks and the answer in `<answer>`.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_PLACEHOLDER = "<image>"


@dataclass(frozen=True)
class PromptSet:
    version: str
    system: str
    instruction: str
    answer_now: str


V1 = PromptSet(
    version="suite-v1",
    system=(
        "You are a helpful assistant that solves visual problems step by step. "
        "You may write Python code to inspect or transform the image, measure, count or compute. "
        "The image is already loaded as a PIL image in the variable `input_image`, and it is also "
        "saved as the file `input_image.jpg` in the working directory. "
        "numpy, PIL, OpenCV (cv2), matplotlib and the standard library are available. "
        "After each code block you will see what it printed and any images it showed."
    ),
    instruction=(
        "Think step by step inside <think></think>. If code helps, write a complete Python script "
        "with its imports, wrapped as <code>\n```python\n...\n```\n</code>; only the first code block "
        "of a turn runs. Put your final answer inside <answer></answer>."
    ),
    answer_now=(
        "This is your last turn: do not write code. Give your final answer now inside <answer></answer>."
    ),
)

PROMPTS: dict[str, PromptSet] = {V1.version: V1}
PROMPT_VERSION = V1.version


def get_prompts(version: str = PROMPT_VERSION) -> PromptSet:
    try:
        return PROMPTS[version]
    except KeyError:
        raise ValueError(f"unknown prompt version {version!r}; known: {', '.join(PROMPTS)}") from None


def user_turn(question: str, prompts: PromptSet = V1, with_image: bool = True) -> str:
    """The user message: the image marker, the question, then the instruction."""
    head = f"{IMAGE_PLACEHOLDER}\n" if with_image else ""
    return f"{head}{question.strip()}\n\n{prompts.instruction}"


def initial_messages(question: str, prompts: PromptSet = V1, with_image: bool = True) -> list[dict[str, str]]:
    """System prompt and user turn for a question that carries no prompt of its own."""
    return [
        {"role": "system", "content": prompts.system},
        {"role": "user", "content": user_turn(question, prompts, with_image)},
    ]


def original_prompt(question: str, images: int, prompts: PromptSet = V1) -> list[dict[str, str]]:
    """The prompt the original evaluation script builds for an item: the system prompt, then a
    user turn of the image markers, the question and the instruction (docs/method.md §2)."""
    messages = initial_messages(question, prompts, with_image=False)
    messages[-1]["content"] = IMAGE_PLACEHOLDER * images + "\n" + messages[-1]["content"]
    return messages


def question_in_prompt(text: str, prompts: PromptSet = V1) -> str:
    """The question in a user turn: its text without image markers or our instruction, trimmed."""
    return text.replace(IMAGE_PLACEHOLDER, "").replace(prompts.instruction, "").strip()
