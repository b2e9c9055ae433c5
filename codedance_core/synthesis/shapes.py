"""Finding shapes with code alone: one fixed script that lists every shape's colour, kind and box.

A program writer could put the generator's boxes into the code (the "looking" a teacher does),
but a policy can only learn to write such code if it can see the shapes itself, which a small
model at a small resolution cannot. This script needs no coordinates: it thresholds each palette
colour, labels the connected regions and names each region's kind from two numbers,

- fill: the share of the region's bounding box it covers (square ~1.0, circle ~0.78,
  triangle ~0.5, five-pointed star ~0.4);
- taper: ink in the top third over ink in the bottom third (an apex-up triangle ~0.2, a star
  ~0.4, circles and squares ~1).

So the same text works on every image, and the question itself is all a writer (or a policy)
has to fill in: the script reads the colour and kind from it. On the suite's easy count images
resized to 144 cells of 28 px every shape is found and named right
(tests/codedance_core/synthesis/test_shapes.py); on hard ones (8-11 px shapes) some stars pass
for triangles or circles, and on hard search images (2-4 px targets) shapes are missed: those
trajectories fail the answer check and are rejected, never taught.

The search family's colour question ("What colour is the small star?") uses the same finder
(`star_colour_code`): at the tiny size a 22-30 px star is 6-8 px, too small for its kind to be
named reliably, but it covers a third of its box, so it is the smallest shape found.
"""

from __future__ import annotations

from codedance_core.data.suite.canvas import KINDS, PALETTE

# Sum of |R-R'|+|G-G'|+|B-B'| under which a pixel is "this colour". Palette colours are >= 80
# apart (yellow-orange); 40 keeps resized edge pixels half-blended with white out, so touching shapes separate.
COLOUR_TOLERANCE = 40

IMPORTS = "import numpy as np\nfrom scipy import ndimage\n\n"

# A zoomed crop is upscaled to about this many pixels a side: enough to see a shape's outline.
ZOOM_SIDE = 224

# The thought before every script that repeats the question. One fixed sentence, the one the tiny
# model's copy pretraining ends its thought with (models/pretrain.py): that model copies best
# across the text it was pretrained on (0.97 of the slots, against 0.49 behind another thought).
SCRIPT_THOUGHT = "I write the question into code."


def printed_thought(value: str) -> str:
    """The thought before an answer that is what the code printed: the same words in every
    family and in the copy pretraining's tool-output form, so the copying it teaches carries over."""
    return f"The code printed {value}."


FIND_SHAPES_CODE = f"""palette = {dict(PALETTE)!r}
pixels = np.asarray(input_image.convert("RGB")).astype(int)
shapes = []  # (colour, kind, left, top, right, bottom)
for colour, rgb in palette.items():
    labels, _ = ndimage.label(np.abs(pixels - rgb).sum(axis=2) < {COLOUR_TOLERANCE})
    for index, (ys, xs) in enumerate(ndimage.find_objects(labels), start=1):
        blob = labels[ys, xs] == index
        if blob.sum() < 3:  # a stray blended edge pixel
            continue
        third = max(1, blob.shape[0] // 3)
        fill, taper = blob.mean(), blob[:third].sum() / blob[-third:].sum()
        kind = "square" if fill > 0.9 else "circle" if fill > 0.68 else "triangle" if taper < 0.3 else "star"
        shapes.append((colour, kind, xs.start, ys.start, xs.stop - 1, ys.stop - 1))
"""


def shape_script(question: str, query: str) -> str:
    """Imports, the question as a string and its words, `query` as the body of `answer(shapes)`,
    the finder, and the call `answer(shapes)`.

    The question is the only part that depends on the item, and it goes in verbatim: the query
    reads the colour and kind out of `words`. A policy then only has to repeat the question, the
    copy its pretraining teaches (models/pretrain.py), and never has to turn "red stars" into
    `'red', 'star'`; measured after SFT on the tiny model, that slot was where its scripts went
    wrong (a question about red shapes, a script counting blue triangles).

    The query is defined before the finder, not written after it, so that every script ends with
    the same line and the only part that differs by question comes right after the question.
    Written after the 12-line finder, the query was a choice the model had to make far from
    the question: the tool SFT model of the session-6 mini (seed 0) copied the question into 10 of
    10 count scripts, then wrote the math family's query after the finder in 6 of them.
    """
    body = "".join(f"    {line}\n" if line else "\n" for line in query.splitlines())
    return IMPORTS + question_lines(question) + "def answer(shapes):\n" + body + "\n" + FIND_SHAPES_CODE + "answer(shapes)\n"


def question_line(question: str) -> str:
    """`question = '<its first line>'`: how every script that repeats the question opens (the
    shape scripts, the chart's extreme script, and the copy pretraining's code form)."""
    return f"question = {question.splitlines()[0]!r}\n"


def question_lines(question: str) -> str:
    """`question_line`, then `words`: the question's words in lower case, punctuation dropped."""
    return (
        question_line(question)
        + "words = question.lower().replace('?', ' ').replace(',', ' ').replace('.', ' ').split()\n"
    )


# The plural in the question ("stars") less its "s" is the finder's kind ("star"); "shapes" is no kind.
ASKED_KIND = f"word[:-1] in {KINDS!r}"


def count_code(question: str) -> str:
    """Find the shapes, keep the colour and kind the question names (none named: any), print how many."""
    return shape_script(
        question,
        "wanted_colour = next((word for word in words if word in palette), None)\n"
        f"wanted_kind = next((word[:-1] for word in words if {ASKED_KIND}), None)\n"
        "found = [s for s in shapes if wanted_colour in (None, s[0]) and wanted_kind in (None, s[1])]\n"
        'print("count:", len(found))\n',
    )


def relation_code(question: str) -> str:
    """Find the triangle and square the question names by colour; print the centre column of each
    and whether the triangle's is the lesser (comparing two 3-digit numbers is the code's job, not a
    tiny model's).

    The colour word stands right before its shape's word ("the purple triangle"). A 4-6 px target
    is not always named right, so each pick is the shape of the asked colour that is of the asked
    kind if there is one, else any shape of that colour.
    """
    return shape_script(
        question,
        "colour_before = dict(zip(words[1:], words))  # each word -> the word before it\n"
        'triangle_colour, square_colour = colour_before["triangle"], colour_before["square"]\n'
        'triangle = min((s for s in shapes if s[0] == triangle_colour), key=lambda s: s[1] != "triangle")\n'
        'square = min((s for s in shapes if s[0] == square_colour), key=lambda s: s[1] != "square")\n'
        "triangle_x, square_x = (triangle[2] + triangle[4]) / 2, (square[2] + square[4]) / 2\n"
        'print("triangle centre x:", triangle_x)\n'
        'print("square centre x:", square_x)\n'
        'print("triangle left of square:", triangle_x < square_x)\n',
    )


def count_compute_code(question: str) -> str:
    """Count each kind the question names, in its order, and print what the question asks of the
    counts: first * second + third when it says multiply, else first - second (the suite's two
    count templates, data/suite/arithmetic.py).

    One script, so that the body is the same for every such item and the answer copies its last
    line, as in the count family. Counting in one turn and computing in a second (with the counts
    copied into the second turn's thought) left more to copy: the session-6 mini's tool SFT got
    0.13 of math items, and every RL arm learned to skip the second script and guess (0.00-0.07).
    """
    return shape_script(
        question,
        f"wanted_kinds = [word[:-1] for word in words if {ASKED_KIND}]\n"
        "counts = [sum(1 for s in shapes if s[1] == kind) for kind in wanted_kinds]\n"
        'print("counts:", dict(zip(wanted_kinds, counts)))\n'
        'print("result:", counts[0] * counts[1] + counts[2] if "multiply" in words else counts[0] - counts[1])\n',
    )


def star_colour_code(question: str) -> str:
    """Find the shape the question asks the colour of, and print its box and colour.

    The target is the smallest shape found, and of equal size the one named the asked kind (read
    from `words`, so the text is the same for every item with that question). Smallest first, not
    kind first: after the resize a 22-30 px star is a 6-8 px blob whose kind the finder often gets
    wrong (it names small triangles stars and a star's core a circle or square), but a star covers
    a third of its box, so it is the smallest shape (the "small star"). On 305 easy search colour
    images at 144 cells this picks the star's colour 95% of the time, against 90% kind first.
    The box line lets the writer check that the code found the star; `colour:` is printed last, the
    line the answer copies. No zoomed crop is shown: the colour is the finder's, and an image after
    the printout would put ~64 image tokens between the value and the answer that copies it, a
    distance the copy pretraining never saw (models/copy_texts.py).
    """
    return shape_script(
        question,
        f"wanted_kind = next(word for word in words if word in {KINDS!r})\n"
        "colour, kind, left, top, right, bottom = min(\n"
        "    shapes, key=lambda s: ((s[4] - s[2] + 1) * (s[5] - s[3] + 1), s[1] != wanted_kind)\n"
        ")\n"
        'print("target box:", (left, top, right, bottom))\n'
        'print("colour:", colour)\n',
    )
