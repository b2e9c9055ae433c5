"""Drawing for the suite: a small palette of unambiguous colours, four shapes, and placement.

Everything is drawn without anti-aliasing, so each shape's pixels have exactly its palette
colour: a test (or a code trajectory) can find a shape by exact colour match, and a colour
answer is never a judgement call. The palette keeps colours far apart in RGB for the same
reason. Boxes are inclusive pixel rectangles `[x0, y0, x1, y1]`, as Pillow draws them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TypeVar

import numpy as np
from PIL import ImageDraw, ImageFont

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 150, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 200, 0),
    "purple": (140, 40, 180),
    "orange": (245, 125, 0),
}
COLOURS: tuple[str, ...] = tuple(PALETTE)
KINDS: tuple[str, ...] = ("circle", "square", "triangle", "star")
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)

Box = tuple[int, int, int, int]
T = TypeVar("T")


def pick(rng: np.random.Generator, options: tuple[T, ...] | list[T]) -> T:
    """One element, as its own Python type (numpy's choice would return numpy scalars)."""
    return options[int(rng.integers(len(options)))]


def sample(rng: np.random.Generator, options: tuple[T, ...] | list[T], count: int) -> list[T]:
    """`count` distinct elements in random order."""
    return [options[int(i)] for i in rng.permutation(len(options))[:count]]


@dataclass(frozen=True)
class Shape:
    """A drawn shape: what it is, its colour and where (inclusive box); `role` is for the record."""

    kind: str
    colour: str
    box: Box
    role: str = "distractor"

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2, (y0 + y1) / 2)

    def to_params(self) -> dict:
        params = asdict(self)
        params["box"] = list(self.box)
        params["rgb"] = list(PALETTE[self.colour])
        return params


def shape_polygon(kind: str, box: Box) -> list[tuple[float, float]]:
    """The outline of a triangle (apex up) or a five-pointed star inscribed in `box`."""
    x0, y0, x1, y1 = box
    if kind == "triangle":
        return [((x0 + x1) / 2, y0), (x1, y1), (x0, y1)]
    if kind == "star":
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        outer = min(x1 - x0, y1 - y0) / 2
        points = []
        for i in range(10):
            radius = outer if i % 2 == 0 else outer * 0.45
            angle = -math.pi / 2 + i * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        return points
    raise ValueError(f"{kind!r} is not a polygon shape")


def draw_shape(draw: ImageDraw.ImageDraw, shape: Shape) -> None:
    rgb = PALETTE[shape.colour]
    if shape.kind == "circle":
        draw.ellipse(shape.box, fill=rgb)
    elif shape.kind == "square":
        draw.rectangle(shape.box, fill=rgb)
    else:
        draw.polygon(shape_polygon(shape.kind, shape.box), fill=rgb)


def boxes_overlap(a: Box, b: Box, margin: int = 0) -> bool:
    return not (a[2] + margin < b[0] or b[2] + margin < a[0] or a[3] + margin < b[1] or b[3] + margin < a[1])


def place_box(
    rng: np.random.Generator,
    size: int,
    canvas: tuple[int, int],
    avoid: list[Box],
    margin: int = 4,
    border: int = 8,
    tries: int = 4000,
) -> Box:
    """A square box of side `size` inside the canvas that keeps `margin` px away from `avoid`."""
    width, height = canvas
    for _ in range(tries):
        x0 = int(rng.integers(border, width - border - size))
        y0 = int(rng.integers(border, height - border - size))
        box = (x0, y0, x0 + size - 1, y0 + size - 1)
        if not any(boxes_overlap(box, other, margin) for other in avoid):
            return box
    raise RuntimeError(f"no room for a {size}px box among {len(avoid)} on a {width}x{height} canvas")


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at a pixel size (no system fonts: rendering must not depend on the host)."""
    return ImageFont.load_default(size=size)


def pastel(rgb: tuple[int, int, int], whiteness: float = 0.8) -> tuple[int, int, int]:
    """A pale tint of a colour, for clutter that must never be mistaken for a palette colour."""
    return tuple(round(c + (255 - c) * whiteness) for c in rgb)  # type: ignore[return-value]
