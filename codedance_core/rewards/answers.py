"""Reading an answer out of a model's response, and the normalisations the accuracy rules share.

Kept apart from the rules themselves (`accuracy.py`) because the evaluation harness and the
format check need the same extraction: a response is scored on what is inside its
`<answer>...</answer>` block and nowhere else, so that the model cannot be rewarded for a
number that merely appears in its reasoning.

Several complete answer blocks: the format rule already penalises them (-1); for accuracy we
take the LAST one, the model's final word, never "any of them" (which would reward hedging).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)

# A number as people write it: optional sign, thousands separators, decimals, or a leading dot.
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)|(?<![\w.])[-+]?\.\d+")
# Characters that mean "this is an expression, not a number with words around it".
_EXPRESSION_MARKS = re.compile(r"[\\^/*=<>{}\[\]|]|sqrt|\w[-+]\w|\w\s+[-+]\s+\w|\+\s*[a-zA-Z]|\d\s*x\s*\d")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_LATEX_WRAPPERS = re.compile(r"\\(?:boxed|text|textbf|mathrm|mbox)\{([^{}]*)\}")

_NUMBER_NAMES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty"
)
NUMBER_WORDS: dict[str, int] = {word: value for value, word in enumerate(_NUMBER_NAMES.split())} | {
    "none": 0,
    "no": 0,
}

# Basic colour terms; a spelling variant maps to one canonical word.
COLOUR_SYNONYMS: dict[str, str] = {"grey": "gray", "violet": "purple", "golden": "gold", "aqua": "cyan"}
_COLOUR_NAMES = (
    "red orange yellow green blue purple pink brown black white gray cyan magenta gold silver "
    "beige tan navy teal maroon olive turquoise lime indigo"
)
COLOURS: frozenset[str] = frozenset(_COLOUR_NAMES.split())
_SHADES = frozenset(("light", "dark", "bright", "pale", "deep"))
YES_NO: dict[str, str] = {"yes": "yes", "no": "no", "true": "yes", "false": "no"}


@dataclass(frozen=True)
class ExtractedAnswer:
    """The answer text of a response (None when it has no complete block) and how many blocks it had."""

    text: str | None
    n_blocks: int


@dataclass(frozen=True)
class ParsedNumber:
    """A single number read from text, or None with the reason it could not be read."""

    value: float | None
    reason: str


def extract_answer(response: str) -> ExtractedAnswer:
    """The content of the last complete `<answer>...</answer>` block, stripped."""
    blocks = _ANSWER_BLOCK.findall(response)
    if not blocks:
        return ExtractedAnswer(text=None, n_blocks=0)
    return ExtractedAnswer(text=blocks[-1].strip(), n_blocks=len(blocks))


def unwrap_latex(text: str) -> str:
    """Drop `$`, `\\boxed{}`, `\\text{}` and friends so plain rules see the plain content."""
    previous = None
    while previous != text:
        previous = text
        text = _LATEX_WRAPPERS.sub(r"\1", text)
    return text.replace("$", "").strip()


def normalise_words(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces: 'The Gray cat.' -> 'gray cat'."""
    text = unwrap_latex(text).lower()
    text = re.sub(r"[^\w\s%-]", " ", text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def parse_single_number(text: str, *, allow_words: bool = False) -> ParsedNumber:
    """The one number in `text` ("1,000" -> 1000, "5 cm" -> 5, "45%" -> 45), else None and why.

    Text that looks like an expression (fractions, roots, operators) is refused, so that
    "\\frac{1}{2}" goes to math equivalence instead of being read as the number 1.
    """
    plain = unwrap_latex(text)
    if _EXPRESSION_MARKS.search(plain):
        return ParsedNumber(None, "looks like an expression")
    found = _NUMBER.findall(plain)
    if len(found) > 1:
        return ParsedNumber(None, f"several numbers: {found[:5]}")
    if len(found) == 1:
        return ParsedNumber(float(found[0].replace(",", "")), "number")
    if allow_words:
        words = [NUMBER_WORDS[w] for w in normalise_words(plain).split() if w in NUMBER_WORDS]
        if len(set(words)) == 1:
            return ParsedNumber(float(words[0]), "number word")
    return ParsedNumber(None, "no number")


def is_colour_answer(text: str) -> bool:
    """True for 'gray', 'Dark grey.', 'light blue': one colour term and at most a shade word."""
    words = [COLOUR_SYNONYMS.get(w, w) for w in normalise_words(text).split()]
    colours = [w for w in words if w in COLOURS]
    return len(colours) == 1 and all(w in COLOURS or w in _SHADES for w in words)


def colour_words(text: str) -> set[str]:
    """The canonical colour terms mentioned in `text` ('dark grey' -> {'gray'})."""
    words = (COLOUR_SYNONYMS.get(w, w) for w in normalise_words(text).split())
    return {w for w in words if w in COLOURS}


def leading_yes_no(text: str) -> str | None:
    """'Yes.' / 'yes, it is' -> 'yes'; None when the text does not start with yes or no."""
    words = normalise_words(text).split()
    return YES_NO.get(words[0]) if words else None
