"""The judge's few-shot prompt, written for this project, and its version.

The version is part of every cache key: change a word of the prompt and bump
`JUDGE_PROMPT_VERSION`, or old verdicts would be served for a question the new prompt asks
differently. Seven short examples cover what rules cannot decide: paraphrases, extra words,
partial answers, wrong entities, and hedged answers.
"""

from __future__ import annotations

JUDGE_PROMPT_VERSION = "codedance-judge-v1"

JUDGE_SYSTEM_PROMPT = (
    "You grade answers to questions about images. You are given the question, the reference "
    "answer and a model's answer. Decide whether the model's answer means the same as the "
    "reference answer. Ignore wording, letter case, units written out or abbreviated, and extra "
    "words that do not change the meaning. An answer that is incomplete, names a different "
    "thing, or lists several candidates is wrong. Reply with exactly one line: "
    "'Judgement: 1' if the answer is correct, 'Judgement: 0' if it is not."
)

# (question, reference answer, model answer, verdict)
JUDGE_EXAMPLES: tuple[tuple[str, str, str, int], ...] = (
    ("What is the man holding?", "an umbrella", "He is holding a black umbrella.", 1),
    ("What is written on the sign?", "STOP", "The sign says 'Yield'.", 0),
    ("Where is the cat sitting?", "on the sofa", "on the couch", 1),
    ("Which animal is bigger?", "the elephant", "the giraffe or the elephant", 0),
    ("What time does the clock show?", "3:15", "a quarter past three", 1),
    ("What are the two people doing?", "playing chess", "playing a board game", 0),
    ("What material is the bridge made of?", "stone", "It appears to be built from stone blocks.", 1),
)


def render_example(question: str, gold: str, prediction: str) -> str:
    return f"Question: {question}\nReference answer: {gold}\nModel answer: {prediction}"


def judge_messages(question: str, gold: str, prediction: str) -> list[dict[str, str]]:
    """OpenAI chat messages: the instructions, seven solved examples, then the case to judge."""
    messages = [{"role": "system", "content": JUDGE_SYSTEM_PROMPT}]
    for example_question, example_gold, example_prediction, verdict in JUDGE_EXAMPLES:
        messages.append(
            {"role": "user", "content": render_example(example_question, example_gold, example_prediction)}
        )
        messages.append({"role": "assistant", "content": f"Judgement: {verdict}"})
    messages.append({"role": "user", "content": render_example(question, gold, prediction)})
    return messages
