"""The snippet semantics, in process (the same functions run inside every session)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from codedance_core.sandbox.user_code import (
    ImageLimits,
    array_to_image,
    cap_text,
    new_namespace,
    normalise_image,
    run_snippet,
)


def run(code: str, namespace=None):
    namespace = namespace if namespace is not None else new_namespace(Image.new("RGB", (100, 80)))
    return run_snippet(code, namespace, turn=1, limits=ImageLimits()), namespace


def test_final_expression_value_is_shown_and_state_kept(capsys):
    outcome, namespace = run("a = 2\na + 40")
    assert outcome.result_repr == "42" and capsys.readouterr().out == "42\n"
    outcome, _ = run("a * 10", namespace)
    assert outcome.result_repr == "20"


def test_images_from_the_final_expression_are_png_encoded():
    outcome, _ = run("input_image")
    assert len(outcome.images) == 1 and Image.open(io.BytesIO(outcome.images[0])).size == (100, 80)


def test_errors_carry_type_message_and_user_line():
    outcome, _ = run("x = 1\n\nundefined_name + x")
    assert (outcome.status, outcome.error_type, outcome.error_line) == ("error", "NameError", 3)
    outcome, _ = run("if True\n    pass")
    assert (outcome.error_type, outcome.error_line) == ("SyntaxError", 1)


def test_exit_is_soft():
    outcome, _ = run("exit()")
    assert outcome.status == "ok"


def test_arrays_become_8_bit_images():
    assert array_to_image(np.ones((4, 4), bool)).getpixel((0, 0)) == 255
    assert array_to_image(np.full((4, 4, 3), 0.5)).getpixel((0, 0)) == (127, 127, 127)
    assert array_to_image(np.full((4, 4, 1), 300)).getpixel((0, 0)) == 255


def test_tiny_images_are_upscaled_and_extreme_ones_dropped():
    limits = ImageLimits(min_side=56, max_aspect_ratio=200)
    assert normalise_image(Image.new("L", (10, 28)), limits).size == (56, 157)
    assert normalise_image(Image.new("RGB", (1, 201)), limits) is None
    assert normalise_image(Image.new("F", (100, 100)), limits).mode == "RGB"


def test_long_texts_are_cut_with_a_marker():
    text = cap_text("x" * 1000, limit=100)
    assert len(text) < 200 and "truncated 900 characters" in text
