"""The `chart` family: bar and line charts with random labels and values (ChartQA-like).

Values are integers on a fixed 0-100 axis drawn at a whole number of pixels per unit
(4 when easy, 5 when hard), so a value read from pixels with code is exact: value =
(axis_bottom_y - top_y) / px_per_unit. Easy charts print each value above its bar or point;
hard ones do not, have more categories, and ask for differences as well. The record holds
the axis pixel mapping, every bar rectangle and every point, so a trajectory writer can
produce the measuring code and its expected output.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from codedance_core.data.suite.canvas import BLACK, COLOURS, PALETTE, WHITE, font, pick
from codedance_core.data.suite.task import ANSWER_INTEGER, LETTERS, SuiteTask, with_options

SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "pa", "do", "fe", "gu", "ha", "ji", "bo")
GRID = (225, 225, 225)
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 30, 60, 60


def _labels(rng: np.random.Generator, count: int) -> list[str]:
    labels: list[str] = []
    while len(labels) < count:
        word = "".join(pick(rng, SYLLABLES) for _ in range(int(rng.integers(2, 4)))).capitalize()
        if word not in labels:
            labels.append(word)
    return labels


def _values(rng: np.random.Generator, count: int, hard: bool) -> list[int]:
    """Distinct values, so the largest and smallest are unambiguous."""
    pool = np.arange(3, 98) if hard else np.arange(5, 100, 5)
    return [int(v) for v in rng.choice(pool, size=count, replace=False)]


def _draw_axes(draw, plot, ppu, tick_step, title) -> None:
    left, top, right, bottom = plot
    for value in range(0, 101, tick_step):
        y = bottom - value * ppu
        draw.line([(left, y), (right, y)], fill=GRID if value else BLACK, width=1)
        draw.text((left - 8, y), str(value), fill=BLACK, font=font(14), anchor="rm")
    draw.line([(left, top), (left, bottom)], fill=BLACK, width=2)
    draw.text(((left + right) // 2, 24), title, fill=BLACK, font=font(20), anchor="mm")


def _question(rng, labels, values, hard):
    """(question kind, text, answer, labels the question names); max/min list every label as options."""
    kinds = ("lookup", "max", "min", "difference") if hard else ("lookup", "max", "min")
    kind = pick(rng, kinds)
    if kind == "lookup":
        i = int(rng.integers(len(labels)))
        return kind, f"What is the value of {labels[i]} in the chart? {ANSWER_INTEGER}", str(values[i]), [labels[i]]
    if kind in ("max", "min"):
        best = int(np.argmax(values) if kind == "max" else np.argmin(values))
        word = "highest" if kind == "max" else "lowest"
        question = with_options(f"Which category has the {word} value?", labels)
        return kind, question, LETTERS[best], []
    i, j = (int(x) for x in rng.choice(len(labels), size=2, replace=False))
    if values[i] < values[j]:
        i, j = j, i
    question = f"What is the value of {labels[i]} minus the value of {labels[j]}? {ANSWER_INTEGER}"
    return kind, question, str(values[i] - values[j]), [labels[i], labels[j]]


def generate(rng: np.random.Generator, hard: bool) -> SuiteTask:
    count = int(rng.integers(6, 9)) if hard else int(rng.integers(3, 6))
    ppu, tick_step = (5, 10) if hard else (4, 20)
    width = 800 if hard else 640
    height = MARGIN_TOP + 100 * ppu + MARGIN_BOTTOM
    plot = (MARGIN_LEFT, MARGIN_TOP, width - MARGIN_RIGHT, MARGIN_TOP + 100 * ppu)
    labels, values = _labels(rng, count), _values(rng, count, hard)
    chart_kind = pick(rng, ("bar", "line"))
    colour = pick(rng, COLOURS)
    title = f"{_labels(rng, 1)[0]} by category"

    image = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(image)
    _draw_axes(draw, plot, ppu, tick_step, title)
    left, _, right, bottom = plot
    slot = (right - left) / count
    marks = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        centre_x = round(left + (i + 0.5) * slot)
        top_y = bottom - value * ppu
        draw.text((centre_x, bottom + 10), label, fill=BLACK, font=font(14), anchor="mt")
        if chart_kind == "bar":
            half = int(slot * 0.3)
            rect = [centre_x - half, top_y, centre_x + half, bottom - 1]
            draw.rectangle(rect, fill=PALETTE[colour])
            marks.append({"label": label, "value": value, "rect": rect})
        else:
            marks.append({"label": label, "value": value, "point": [centre_x, top_y]})
        if not hard:
            draw.text((centre_x, top_y - 6), str(value), fill=BLACK, font=font(14), anchor="mb")
    if chart_kind == "line":
        points = [tuple(mark["point"]) for mark in marks]
        draw.line(points, fill=PALETTE[colour], width=3)
        for x, y in points:
            draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=PALETTE[colour])

    question_kind, question, answer, asked = _question(rng, labels, values, hard)
    options = list(labels) if question_kind in ("max", "min") else []
    params = {
        "canvas": [width, height],
        "chart_kind": chart_kind,
        "title": title,
        "colour": colour,
        "labels": labels,
        "values": values,
        "value_labels_shown": not hard,
        "plot_area": list(plot),
        "y_axis": {"min": 0, "max": 100, "tick_step": tick_step, "px_per_unit": ppu, "y_of_zero": bottom,
                   "y_of_max": bottom - 100 * ppu},
        "marks": marks,
        "question_kind": question_kind,
        "asked_labels": asked,
        "options": options,
    }
    return SuiteTask(question=question, answer=answer, image=image, params=params, options=options)
