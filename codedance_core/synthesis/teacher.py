"""Open-ended trajectories: a teacher model writes the turns, the sandbox runs its code.

For items no program can write (and families configured to go to the teacher), a teacher
behind an OpenAI-compatible endpoint is asked with OUR prompt (the row's own system prompt and
user turn, as the policy will see them). Generation stops at `</code>`; the first code block of
the turn runs in the item's sandbox session and the teacher reads the real observation, turn
after turn, until it answers. Its code may fail along the way (the error is a real observation
and recovering from it is worth learning); what is kept is decided, as for program-written
trajectories, by the final answer scoring correct.
"""

from __future__ import annotations

import io

from PIL import Image

from codedance_core.agent.parsing import parse_turn
from codedance_core.config.synthesis import SynthesisConfig
from codedance_core.data.schemas import IMAGE_MARKER
from codedance_core.engines.base import GenerationRequest, SamplingParams
from codedance_core.engines.openai import OpenAIEngine
from codedance_core.sandbox import Session
from codedance_core.synthesis.items import SynthesisItem
from codedance_core.synthesis.verify import Rejected, Trajectory, Turn, execute

CODE_STOP = "</code>"


def with_image_parts(content: str) -> str | list[dict]:
    """Message content whose `<image>` markers become image parts (what the HTTP engine sends)."""
    if IMAGE_MARKER not in content:
        return content
    parts: list[dict] = []
    for position, text in enumerate(content.split(IMAGE_MARKER)):
        if position:
            parts.append({"type": "image"})
        if text:
            parts.append({"type": "text", "text": text})
    return parts


def close_code_block(text: str) -> str:
    """A turn cut at the stop string by a server that did not return it gets its `</code>` back."""
    if "<code>" in text and CODE_STOP not in text:
        return text.rstrip() + "\n" + CODE_STOP
    return text


async def run_teacher(
    item: SynthesisItem, session: Session, engine: OpenAIEngine, config: SynthesisConfig
) -> Trajectory:
    """Let the teacher solve the item with the sandbox; Rejected when it errs, rambles or never answers."""
    assert config.teacher is not None
    params = SamplingParams(
        max_new_tokens=config.teacher.max_new_tokens,
        temperature=config.teacher.temperature,
        seed=config.seed,
        stop=(CODE_STOP,),
    )
    loop = config.loop_settings
    messages = [dict(message) for message in item.prompt]
    images: list[Image.Image] = [item.image]
    turns: list[Turn] = []
    for _ in range(loop.max_turns):
        request = GenerationRequest(
            messages=[{"role": m["role"], "content": with_image_parts(m["content"])} for m in messages],
            images=list(images),
        )
        completion = await engine.complete(request, params)
        if completion.finish_reason == "error":
            raise Rejected("teacher_error", completion.error or "no completion", turns)
        text = close_code_block(completion.text)
        parsed = parse_turn(text)
        if parsed.code is not None:
            result, observation = await execute(
                session, parsed.code, config.sandbox.timeout_s, loop.observation_max_chars
            )
            turns.append(Turn(text, result, observation))
            messages += [{"role": "assistant", "content": text},
                         {"role": "tool", "content": observation.text}]
            images += [Image.open(io.BytesIO(png)).convert("RGB") for png in observation.images]
            continue
        if parsed.parse_error is not None:
            raise Rejected("teacher_bad_code", parsed.parse_error, turns + [Turn(text)])
        turns.append(Turn(text))
        if parsed.answer is None:
            raise Rejected("teacher_no_answer", f"a turn with neither code nor answer: {text[:200]!r}", turns)
        return Trajectory(turns=turns, answer=parsed.answer, score_rule="", source="teacher")
    raise Rejected("too_many_turns", f"no answer within {loop.max_turns} turns", turns)
