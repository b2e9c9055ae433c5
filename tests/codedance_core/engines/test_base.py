"""The stop-string rule every engine shares, and sampling parameter validation."""

from __future__ import annotations

import pytest

from codedance_core.engines.base import SamplingParams, cut_at_stop, first_stop


@pytest.mark.parametrize(
    ("text", "stops", "expected"),
    [
        ("print(1)\n</code> more", ["</code>"], (16, "</code>")),
        ("no stop here", ["</code>"], None),
        ("a</answer>b</code>", ["</code>", "</answer>"], (10, "</answer>")),  # the first to END wins
        ("xabcd", ["bcd", "abcd"], (5, "abcd")),  # same end: the longer (earlier start) wins
        ("", ["x"], None),
    ],
)
def test_first_stop(text, stops, expected):
    assert first_stop(text, stops) == expected


# A toy "tokenizer": each token id is an index into this vocabulary of text pieces.
PIECES = ["<code>", "\n", "print", "(1)", "</code>", " tail", "</co", "de>\nX", "zz"]


def decode(ids):
    return "".join(PIECES[i] for i in ids)


@pytest.mark.parametrize(
    ("ids", "stops", "expected"),
    [
        ([0, 1, 2, 3, 1, 4, 5], ["</code>"], (6, "<code>\nprint(1)\n</code>", "</code>")),
        ([0, 2, 6, 7, 8], ["</code>"], (4, "<code>print</code>", "</code>")),  # stop ends inside token 3
        ([0, 2, 3], ["</code>"], None),
        ([2, 3, 4], [], None),
        ([8, 8, 8], ["zzz"], (2, "zzz", "zzz")),  # the shortest prefix holding the whole stop string
    ],
)
def test_cut_at_stop_keeps_the_stop_and_its_last_token(ids, stops, expected):
    assert cut_at_stop(ids, decode, stops) == expected


@pytest.mark.parametrize(
    "kwargs",
    [{"max_new_tokens": 0}, {"temperature": -1}, {"top_p": 0}, {"top_p": 1.5}, {"stop": ("",)}],
)
def test_bad_sampling_params_are_refused(kwargs):
    with pytest.raises(ValueError):
        SamplingParams(**kwargs)


def test_temperature_zero_is_greedy():
    assert SamplingParams(temperature=0).greedy and not SamplingParams(temperature=0.7).greedy


def test_the_interface_imports_without_torch():
    """HTTP-only processes (the evaluation harness, the judge) import the interface; it must not
    pull torch and transformers (~450 MB) with it."""
    import subprocess
    import sys

    probe = "import sys, codedance_core.engines.base, codedance_core.models; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_model_names_still_resolve_lazily():
    from codedance_core import models
    from codedance_core.models.bundle import load_model_bundle

    assert models.load_model_bundle is load_model_bundle
    assert "build_tiny_model" in dir(models)
    assert sorted(models.__all__) == sorted(models._SOURCES)
    with pytest.raises(AttributeError):
        models.no_such_name  # noqa: B018
