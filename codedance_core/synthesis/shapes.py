"""Finding shapes with code alone: one fixed script that lists every shape's colour, kind and box.

Program writers used to put the generator's boxes into the code (the "looking" a teacher does).
A policy can only learn to write such code if it can see the shapes itself, which a small model
at a small resolution cannot. This script needs no coordinates: it thresholds each palette
colour, labels the connected regions and names each region's kind from two numbers,

- fill: the share of the region's bounding box it covers (square ~1.0, circle ~0.78,
  triangle ~0.5, five-pointed star ~0.4);
- taper: ink in the top third over ink in the bottom third (an apex-up triangle ~0.2, a star
  ~0.4, circles and squares ~1).

So the same text works on every image, and a question's words (a colour, a kind) are all a
writer (or a policy) has to fill in. On the suite's easy count images resized to 144 cells of
28 px every shape is found and named right (tests/codedance_core/synthesis/test_shapes.py); on
hard ones (8-11 px shapes) some stars pass for triangles or circles, and on hard search images
(2-4 px targets) shapes are missed: those trajectories fail the answer check and are rejected,
never taught.
"""

from __future__ import annotations

from codedance_core.data.suite.canvas import PALETTE

# Sum of |R-R'|+|G-G'|+|B-B'| under which a pixel is "this colour". Palette colours are >= 80
# apart (yellow-orange); 40 keeps resized edge pixels half-blended with white out, so touching shapes separate.
COLOUR_TOLERANCE = 40

IMPORTS = "import numpy as np\nfrom scipy import ndimage\n\n"

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


def shape_script(asked: str, query: str) -> str:
    """Imports, then `asked` (the only line that depends on the question), the finder, `query`.

    The question's words go in the script's first lines, right after the thought that names
    them: a small model copies from a few tokens back far more reliably than from the end of
    a 300-token block.
    """
    return IMPORTS + asked + FIND_SHAPES_CODE + query


def count_code(colour: str | None, kind: str | None) -> str:
    """Find the shapes, keep the asked-for colour and kind (None: any), print how many."""
    return shape_script(
        f"wanted_colour, wanted_kind = {colour!r}, {kind!r}  # what to count (None: any)\n",
        "found = [s for s in shapes if wanted_colour in (None, s[0]) and wanted_kind in (None, s[1])]\n"
        'print("count:", len(found))\n',
    )


def relation_code(triangle_colour: str, square_colour: str) -> str:
    """Find the named triangle and square and print the centre column of each.

    A 4-6 px target is not always named right, so each pick is the shape of the asked colour
    that is of the asked kind if there is one, else any shape of that colour.
    """
    return shape_script(
        f"triangle_colour, square_colour = {triangle_colour!r}, {square_colour!r}\n",
        'triangle = min((s for s in shapes if s[0] == triangle_colour), key=lambda s: s[1] != "triangle")\n'
        'square = min((s for s in shapes if s[0] == square_colour), key=lambda s: s[1] != "square")\n'
        'print("triangle centre x:", (triangle[2] + triangle[4]) / 2)\n'
        'print("square centre x:", (square[2] + square[4]) / 2)\n',
    )


def count_kinds_code(kinds: list[str]) -> str:
    """Find the shapes and count each asked-for kind into `counts` (kept in the session)."""
    return shape_script(
        f"wanted_kinds = {kinds!r}\n",
        "counts = {kind: sum(1 for s in shapes if s[1] == kind) for kind in wanted_kinds}\n"
        'print("counts:", counts)\n',
    )
