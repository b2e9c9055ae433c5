"""The default prompts of suite rows (versioned): the one place their text lives.

Released RL rows carry their own system prompt and it is used as is; rows we make ourselves
get this one, which states the same facts as the original evaluation prompt (method.md
section 2): solve step by step, Python may be written, and the image is available both as a
preloaded PIL object `input_image` and as the file `input_image.jpg`. The wording is ours.
A later issue moves prompts into the agent package; until then the suite imports them here.
"""

from __future__ import annotations

from codedance_core.data.schemas import IMAGE_MARKER

PROMPT_VERSION = "suite-v1"

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant that solves visual problems step by step. "
    "You may write Python code to inspect or transform the image, measure, count or compute. "
    "The image is already loaded as a PIL image in the variable `input_image`, and it is also "
    "saved as the file `input_image.jpg` in the working directory. "
    "numpy, PIL, OpenCV (cv2), matplotlib and the standard library are available. "
    "After each code block you will see what it printed and any images it showed."
)

USER_INSTRUCTION = (
    "Think step by step inside <think></think>. If code helps, write a complete Python script "
    "with its imports, wrapped as <code>\n```python\n...\n```\n</code>; only the first code block "
    "of a turn runs. Put your final answer inside <answer></answer>."
)


def user_turn(question: str) -> str:
    """The user message of a suite row: the image marker, the question, then the instruction."""
    return f"{IMAGE_MARKER}\n{question}\n\n{USER_INSTRUCTION}"


def suite_messages(question: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": user_turn(question)},
    ]
