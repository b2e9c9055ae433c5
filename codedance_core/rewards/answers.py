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
from collections.abc import Mapping
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


# ---------------------------------------------------------------- multiple choice
# What models put before the option they pick: "The answer is", "Answer:", "The correct option is".
_CHOICE_LEAD_IN = re.compile(
    r"^(?:so\s*,?\s*)?(?:the\s+)?(?:final\s+|correct\s+|right\s+|best\s+)?(?:answer|option|choice)"
    r"(?:\s+is|\s+should\s+be)?\s*[:：]?\s*",
    flags=re.IGNORECASE,
)
# The whole answer is one letter: "B", "(B)", "B.", "[b]".
_BARE_LETTER = re.compile(r"^[(\[]?([A-Za-z])[)\]]?\s*[.。]?$")
# A letter set off by brackets or a separator, then the option's text: "B. 2π", "(B) 2π", "B) x", "B: x".
# An upper-case letter followed only by a space ("A cat") is a word, not an option.
_LETTER_THEN_TEXT = re.compile(
    r"^(?:\(([A-Za-z])\)|\[([A-Za-z])\]|([A-Z])\s*[.:：)])\s*(.*)$", flags=re.DOTALL
)
# Where a list of options starts in a question or a packed option string: "(A) x", "A. x", "A: x".
_OPTION_MARK = re.compile(r"(?:^|(?<=[\s;,]))[(\[]?([A-J])(?:[)\]]|[.:：])")
_LATEX_SYMBOLS = (
    ("^{\\circ}", "°"),
    ("^\\circ", "°"),
    ("\\circ", "°"),
    ("\\degree", "°"),
    ("\\pi", "π"),
    ("\\sqrt", "√"),
    ("\\left", ""),
    ("\\right", ""),
    ("\\times", "×"),
    ("\\cdot", "·"),
)
_PLAIN_NUMBER = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)$")


def option_key(text: str) -> str:
    """An option's text reduced for comparison: '$2\\pi$', '2π' and '2 π.' all give '2π'."""
    text = unwrap_latex(text)
    for latex, symbol in _LATEX_SYMBOLS:
        text = text.replace(latex, symbol)
    return re.sub(r"[\s{}\\$*`]", "", text.lower()).rstrip(".。")


def _key_number(key: str) -> float | None:
    """The value of a key that is only a number, perhaps in degrees or percent ('145°' -> 145)."""
    bare = key.replace(",", "").rstrip("°%")
    return float(bare) if _PLAIN_NUMBER.match(bare) else None


def option_by_text(text: str, options: Mapping[str, str]) -> str | None:
    """The letter of the one option whose text `text` is (numbers compared as numbers), else None."""
    key = option_key(text)
    if not key:
        return None
    found = [letter for letter, option in options.items() if option_key(option) == key]
    number = _key_number(key)
    if not found and number is not None:
        found = [letter for letter, option in options.items() if _key_number(option_key(option)) == number]
    return found[0] if len(found) == 1 else None


def _letter_form(text: str) -> str | None:
    bare = _BARE_LETTER.match(text)
    if bare:
        return bare.group(1).upper()
    with_text = _LETTER_THEN_TEXT.match(text)
    if with_text:
        return next(group for group in with_text.groups()[:3] if group).upper()
    return None


def choice_letter(text: str, options: Mapping[str, str]) -> str | None:
    """The option an answer names, as its letter, or None when it names none clearly.

    Accepted: 'B', '(B)', 'B.', 'B) text', 'B. 2π', 'The answer is B', 'Answer: (B)', and, when
    the options are known, an option's own text. A letter written with its text wins over the
    text ('B. 4π' is B even if B reads 2π): it is what the model chose. Words that merely start
    with a capital ('Because ...', 'A cat') name nothing.
    """
    plain = unwrap_latex(text).replace("*", "").strip()
    after_lead_in = _CHOICE_LEAD_IN.sub("", plain, count=1).strip()
    for candidate in dict.fromkeys((plain, after_lead_in)):
        if options and (by_text := option_by_text(candidate, options)):
            return by_text
        if letter := _letter_form(candidate):
            return letter
    return None


def options_in_text(text: str) -> dict[str, str]:
    """Options listed in text as {letter: text}: 'Choices: (A) 2 (B) 4', 'A:2\\nB:4', 'A. 2π; B. 4π'.

    The last run of consecutive letters from A is taken (at least two), each option ending at its
    line's end; empty when the text lists no options.
    """
    marks = list(_OPTION_MARK.finditer(text))
    best: list[re.Match[str]] = []
    run: list[re.Match[str]] = []
    for mark in marks:
        letter = mark.group(1)
        if letter == "A":
            run = [mark]
        elif run and ord(letter) == ord(run[-1].group(1)) + 1:
            run.append(mark)
        if len(run) >= 2:
            best = list(run)
    ends = [mark.start() for mark in best[1:]] + [len(text)]
    return {
        mark.group(1): text[mark.end() : end].split("\n", 1)[0].strip(" \t;,")
        for mark, end in zip(best, ends)
    }
