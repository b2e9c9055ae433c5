"""Search trajectories: find a tiny target with code and read its colour or position.

"What colour is the small star?": the target is a few pixels across once the image is resized
for the model, so the program crops a small window around where it is (the writer knows where:
the "looking" a teacher does), upscales it to look at it, and reads the hue of the most
saturated pixels. A "miss" first attempt crops an empty patch of the image, sees nothing
saturated, and corrects itself: the model learns that a crop can miss and what to do about it.

"Is the red triangle left of the blue square?": the question names both targets, so the
coordinate-free shape finder (`shapes.py`) locates them and the code compares their centres.
"""

from __future__ import annotations

from codedance_core.data.suite.canvas import PALETTE
from codedance_core.data.suite.task import LETTERS
from codedance_core.synthesis.shapes import SCRIPT_THOUGHT, relation_code
from codedance_core.synthesis.steps import (
    AnswerStep,
    ItemView,
    ToolStep,
    UnreadableOutput,
    Writer,
    read_value,
)

ZOOM_SIDE = 224  # upscale crops to about this many pixels: enough to see a shape's outline


def _palette_hues() -> str:
    import colorsys

    hues = {name: round(colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0] * 360, 1) for name, rgb in PALETTE.items()}
    return repr(hues)


def _zoom(name: str, box: tuple[int, int, int, int]) -> str:
    left, top, right, bottom = box
    factor = max(2, ZOOM_SIDE // max(1, right - left + 1, bottom - top + 1))
    return (f"{name} = input_image.crop(({left}, {top}, {right + 1}, {bottom + 1}))\n"
            f"{name}_zoom = {name}.resize(({name}.width * {factor}, {name}.height * {factor}), Image.Resampling.LANCZOS)\n")


def _colour_code(box: tuple[int, int, int, int]) -> str:
    return f"""import colorsys
import numpy as np
from PIL import Image

{_zoom("crop", box)}pixels = np.asarray(crop.convert("RGB")).astype(int)
saturation = pixels.max(axis=2) - pixels.min(axis=2)
print("max saturation:", int(saturation.max()))
strongest = pixels[saturation >= 0.8 * saturation.max()].mean(axis=0)
hue = colorsys.rgb_to_hsv(*(strongest / 255))[0] * 360
palette_hues = {_palette_hues()}
colour = min(palette_hues, key=lambda name: min(abs(hue - palette_hues[name]), 360 - abs(hue - palette_hues[name])))
print("hue:", round(hue, 1))
print("colour:", colour)
crop_zoom
"""


def _empty_crop_code(box: tuple[int, int, int, int]) -> str:
    return f"""import numpy as np
from PIL import Image

{_zoom("crop", box)}pixels = np.asarray(crop.convert("RGB")).astype(int)
print("max saturation:", int((pixels.max(axis=2) - pixels.min(axis=2)).max()))
crop_zoom
"""


def _empty_box(view: ItemView, side: int) -> tuple[int, int, int, int] | None:
    """A window of `side` px that touches no shape: where a wrong guess would land."""
    shapes = [view.box(shape["box"], pad=2) for shape in view.params["shapes"]]
    width, height = view.size
    for _ in range(200):
        x0, y0 = view.rng.randrange(0, max(1, width - side)), view.rng.randrange(0, max(1, height - side))
        box = (x0, y0, x0 + side - 1, y0 + side - 1)
        if not any(b[0] <= box[2] and box[0] <= b[2] and b[1] <= box[3] and box[1] <= b[3] for b in shapes):
            return box
    return None


def _missed_attempt(view: ItemView, target_box: tuple[int, int, int, int], what: str):
    """A crop that lands on empty background; returns the admission that opens the next turn."""
    side = max(target_box[2] - target_box[0], target_box[3] - target_box[1]) + 12
    empty = _empty_box(view, side)
    if empty is None:
        return None
    think = f"The {what} is tiny in this image. I think it is around ({(empty[0] + empty[2]) // 2}, " \
            f"{(empty[1] + empty[3]) // 2}); I crop that area and zoom in."
    result = yield ToolStep(think, _empty_crop_code(empty))
    saturation = read_value(result, "max saturation")
    cx, cy = (target_box[0] + target_box[2]) // 2, (target_box[1] + target_box[3]) // 2
    return (f"The zoomed patch is plain background (max saturation {saturation}): no {what} there, my guess "
            f"was wrong. Looking again, the {what} is near ({cx}, {cy}).")


def write_search(view: ItemView) -> Writer:
    """Zoom on the small target(s) and answer from what the code measured."""
    if view.params["question_kind"] == "colour":
        star = next(shape for shape in view.params["shapes"] if shape["role"] == "target")
        return (yield from _colour_trajectory(view, star))
    return (yield from _relation_trajectory(view))


def _colour_trajectory(view: ItemView, star: dict) -> Writer:
    box = view.box(star["box"], pad=3)
    missed = (yield from _missed_attempt(view, box, "small star")) if view.miss_first else None
    think = missed or "The small star is only a few pixels wide here."
    think += f" I crop around ({(box[0] + box[2]) // 2}, {(box[1] + box[3]) // 2}), zoom in, and read the hue of " \
             "its most saturated pixels, which is where the star's own colour is."
    result = yield ToolStep(think, _colour_code(box))
    colour = read_value(result, "colour")
    options = view.params.get("options") or []
    if options:
        if colour not in options:
            raise UnreadableOutput(f"measured colour {colour!r} is not among the options {options}")
        letter = LETTERS[options.index(colour)]
        return AnswerStep(f"The zoomed star is {colour}; option ({letter}) is {colour}.", letter)
    return AnswerStep(f"The zoomed star is {colour}.", colour)


def _relation_trajectory(view: ItemView) -> Writer:
    result = yield ToolStep(SCRIPT_THOUGHT, relation_code(view.question))
    left = read_value(result, "triangle left of square") == "True"
    think = f"The code says the triangle is to the {'left' if left else 'right'} of the square."
    return AnswerStep(think, "yes" if left else "no")
