"""Counting trajectories: threshold a colour and count connected components, or box and check.

Two programs, chosen by what the question asks:
- "How many red shapes?": every shape of that colour is counted, so the code thresholds the
  colour, labels connected components and counts the blobs, then draws a box around each one;
- a kind ("How many stars?", "How many red stars?"): colour alone cannot separate the kinds, so
  the writer lists where it sees the shapes (the generator's boxes: the "looking" a teacher
  does), and the code checks each box really holds the expected ink before drawing and counting.
Either way the number in the answer is the one the code printed.
"""

from __future__ import annotations

from codedance_core.data.suite.canvas import PALETTE
from codedance_core.synthesis.steps import AnswerStep, ItemView, ToolStep, Writer, read_int

# Sum of |R-R'|+|G-G'|+|B-B'| under which a pixel is "this colour": palette colours are >= 80
# apart, and half-blended edge pixels (bicubic resizing) fall outside, so touching shapes separate.
COLOUR_TOLERANCE = 40


def _components_code(rgb: list[int], colour: str, min_pixels: int) -> str:
    return f"""import numpy as np
from PIL import ImageDraw
from scipy import ndimage

pixels = np.asarray(input_image.convert("RGB")).astype(int)
target = np.array({list(rgb)})  # {colour}
mask = np.abs(pixels - target).sum(axis=2) < {COLOUR_TOLERANCE}
labels, n = ndimage.label(mask)
boxes = []
for index, region in enumerate(ndimage.find_objects(labels), start=1):
    if (labels[region] == index).sum() >= {min_pixels}:  # ignore stray edge pixels
        ys, xs = region
        boxes.append((xs.start, ys.start, xs.stop - 1, ys.stop - 1))
marked = input_image.copy()
draw = ImageDraw.Draw(marked)
for box in boxes:
    draw.rectangle(box, outline=(0, 0, 0), width=1)
print("count:", len(boxes))
marked
"""


def _boxes_code(boxes: list[tuple[int, int, int, int]], rgb: list[int] | None, what: str) -> str:
    if rgb is not None:
        ink = f"(np.abs(patch - np.array({list(rgb)})).sum(axis=2) < {COLOUR_TOLERANCE}).mean()"
    else:
        ink = "(np.abs(patch - 255).sum(axis=2) > 60).mean()"  # the share of non-white pixels
    listed = ",\n    ".join(str(box) for box in boxes)
    return f"""import numpy as np
from PIL import ImageDraw

pixels = np.asarray(input_image.convert("RGB")).astype(int)
boxes = [  # where I see {what}: (left, top, right, bottom)
    {listed},
]
found = []
for left, top, right, bottom in boxes:
    patch = pixels[top:bottom + 1, left:right + 1]
    if {ink} > 0.15:
        found.append((left, top, right, bottom))
marked = input_image.copy()
draw = ImageDraw.Draw(marked)
for box in found:
    draw.rectangle(box, outline=(0, 0, 0), width=1)
print("count:", len(found))
marked
"""


def write_count(view: ItemView) -> Writer:
    """Count the asked-for shapes with code; answer with the printed count."""
    params = view.params
    form, target = params["question_kind"], params["target"]
    colour, kind = target.get("colour"), target.get("kind")
    counted = [shape for shape in params["shapes"] if shape["role"] == "target"]
    what = " ".join(part for part in (colour, f"{kind}s" if kind else "shapes") if part)
    if form == "colour":
        rgb = list(PALETTE[colour])
        think = (f"I need to count every {colour} shape, whatever its kind. The shapes are drawn in flat colours, "
                 f"so I can threshold the {colour} pixels, label the connected regions and count them, drawing a "
                 f"box around each so I can check none was merged or missed.")
        min_pixels = max(3, int(6 * view.scale_x * view.scale_y))
        result = yield ToolStep(think, _components_code(rgb, colour, min_pixels))
    else:
        boxes = [view.box(shape["box"]) for shape in counted]
        rgb = counted[0]["rgb"] if (counted and colour) else None
        think = (f"I need to count the {what}. Colour alone cannot tell the kinds apart, so I note where I see each "
                 f"of them, check in the pixels that every box really holds {'that colour' if rgb else 'a shape'}, "
                 f"mark them on the image and count.")
        result = yield ToolStep(think, _boxes_code(boxes, rgb, what))
    count = read_int(result, "count")
    think = f"The code found {count} {what} and the marked image shows each of them boxed once, so the answer is {count}."
    return AnswerStep(think, str(count))

