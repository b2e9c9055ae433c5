"""The trajectory viewer: its content, its filters, and that Chromium renders it with its images."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from codedance_core.evaluation.plots import accuracy_groups, plot_accuracy
from codedance_core.evaluation.stats import run_stats
from codedance_core.evaluation.viewer import render_viewer, write_viewer

CODE = "crop = input_image.crop((0, 0, 50, 50))\ncrop.show()"


def rows_with_images(tmp_path: Path) -> list[dict]:
    (tmp_path / "images").mkdir()
    Image.new("RGB", (300, 200), "red").save(tmp_path / "images" / "q_input0.png")
    Image.new("RGB", (50, 50), "blue").save(tmp_path / "images" / "q_s0_out0.png")
    conversation = [
        {"role": "system", "content": "You solve <b>visual</b> problems."},
        {"role": "user", "content": "<image>\nWhat colour is the corner?"},
        {"role": "assistant", "content": f"<think>crop it</think><code>\n```python\n{CODE}\n```\n</code>"},
        {"role": "tool", "content": "Execution succeeded.\n1 image: <image>"},
        {"role": "assistant", "content": "<answer>red</answer>"},
    ]
    base = {
        "data_source": "colours",
        "gold": "red",
        "rule": "colour",
        "turns": 2,
        "conversation": conversation,
    }
    return [
        {
            **base,
            "item_id": "q",
            "sample_index": 0,
            "prediction": "red",
            "acc": 1.0,
            "status": "scored",
            "tool_calls": 1,
            "tool_successes": 1,
            "images": ["images/q_input0.png", "images/q_s0_out0.png"],
        },
        {
            **base,
            "item_id": "r",
            "sample_index": 0,
            "prediction": None,
            "acc": 0.0,
            "status": "rollout_error",
            "error": "engine error: boom",
            "tool_calls": 0,
            "tool_successes": 0,
            "turns": 0,
            "conversation": [],
            "images": [],
        },
    ]


def test_the_page_shows_code_outputs_images_and_verdicts(tmp_path) -> None:
    rows = rows_with_images(tmp_path)
    page = render_viewer(rows, {"model": "m", "dataset": "d", **run_stats(rows)}, tmp_path)
    assert page.count("class='card") == 2
    assert "<pre class='code'>crop = input_image.crop((0, 0, 50, 50))\ncrop.show()</pre>" in page
    assert page.count("src='data:image/png;base64,") == 2  # the question image and the produced one
    assert "&lt;b&gt;visual&lt;/b&gt;" in page  # model and data text is escaped, never markup
    assert "data-correct='1' data-tool='1' data-failed='0'" in page
    assert "data-correct='0' data-tool='0' data-failed='1'" in page
    assert "engine error: boom" in page and "95% CI" in page


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (Debian package `chromium`)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


def dump_dom(browser: str, page: Path) -> str:
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--virtual-time-budget=3000",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_chromium_renders_the_viewer_with_its_images_and_filters(tmp_path) -> None:
    browser = chromium()
    rows = rows_with_images(tmp_path)
    page = write_viewer(
        rows, {"model": "m", "dataset": "d", **run_stats(rows)}, tmp_path / "viewer.html", tmp_path
    )
    # The page must stand alone: moved away from its image folder, it still shows every image.
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    probe = page.read_text().replace(
        "</body>",
        "<script>window.addEventListener('load',()=>{const imgs=[...document.images];"
        "document.body.dataset.decoded=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;"
        "document.body.dataset.widths=imgs.map(i=>i.naturalWidth).join(',');"
        "show('incorrect');});</script></body>",
    )
    (moved / "viewer.html").write_text(probe)
    dom = dump_dom(browser, moved / "viewer.html")
    assert re.search(r'data-decoded="2"', dom), dom[:500]
    assert 'data-widths="300,50"' in dom
    # after show('incorrect') only the failed card is displayed
    assert re.search(r'<span id="shown">1</span>', dom)


def test_the_plot_is_a_png_with_groups_by_source_and_tool_use(tmp_path) -> None:
    rows = rows_with_images(tmp_path)
    assert set(accuracy_groups(rows)) == {"source: colours", "tools: used", "tools: none"}
    path = plot_accuracy(rows, tmp_path / "plot.png", title="m on d")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 300
