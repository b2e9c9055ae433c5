"""The trajectory viewer: one self-contained HTML page per run, to look at what the model did.

People read trajectories more than numbers: a score moves and the first question is "on which
items, and what did the code do?". The page answers that without a server or a second file:
a summary table, then every trajectory with its question image, the model's text, each code
block, the sandbox's output and the images the code produced, and the verdict. Buttons filter
by correct / incorrect / tool use / failures (a few lines of inline JS, no libraries).

Self-contained means images are inlined as data URLs; they are shrunk to at most
`MAX_SIDE` pixels on their long side first (an HR-Bench 8K page would otherwise weigh gigabytes),
while the full-size files stay beside the result jsonl.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from codedance_core.chat_format.prompts import IMAGE_PLACEHOLDER

MAX_SIDE = 768
_CODE = re.compile(r"<code>(.*?)(?:</code>|$)", re.DOTALL)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
.card{border:1px solid #bbb;border-radius:6px;margin:1em 0;padding:.6em 1em}
.card.correct{border-left:6px solid #2a2}.card.incorrect{border-left:6px solid #c33}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;color:#fff;font-size:.85em;margin-right:4px}
.ok{background:#2a2}.bad{background:#c33}.info{background:#668}
.msg{margin:.5em 0;padding:.4em .6em;border-radius:4px}.system{background:#f4f4f4;font-size:.85em}
.user{background:#eef4ff}.assistant{background:#fff8e8}.tool{background:#eef9ee}
pre{white-space:pre-wrap;word-break:break-word;margin:.3em 0}pre.code{background:#272822;color:#f8f8f2;padding:.5em}
img.traj{max-width:100%;max-height:420px;border:1px solid #999;display:block;margin:.3em 0}
button{margin-right:.4em}.role{font-weight:bold;font-size:.8em;text-transform:uppercase;color:#555}
"""

_SCRIPT = """
function show(kind){let n=0;document.querySelectorAll('.card').forEach(c=>{
 const d=c.dataset;const keep=kind==='all'||(kind==='correct'&&d.correct==='1')||
 (kind==='incorrect'&&d.correct==='0')||(kind==='tool'&&d.tool==='1')||(kind==='notool'&&d.tool==='0')||
 (kind==='failed'&&d.failed==='1');c.style.display=keep?'':'none';if(keep)n++;});
 document.getElementById('shown').textContent=n;}
"""

_FILTERS = [
    ("all", "all"),
    ("correct", "correct"),
    ("incorrect", "incorrect"),
    ("tool", "used tools"),
    ("notool", "no tools"),
    ("failed", "failures"),
]


def image_data_url(path: Path, max_side: int = MAX_SIDE) -> str:
    """A PNG data URL of the image at `path`, shrunk to `max_side`; '' when it cannot be read."""
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    except OSError:
        return ""
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def render_viewer(rows: Sequence[Mapping[str, Any]], stats: Mapping[str, Any], base_dir: Path) -> str:
    """The whole page as a string; image paths in rows are relative to `base_dir`."""
    title = html.escape(f"{stats.get('model', '')} on {stats.get('dataset', '')}")
    buttons = "".join(f"<button onclick=\"show('{kind}')\">{label}</button>" for kind, label in _FILTERS)
    cards = "\n".join(_card(row, base_dir) for row in rows)
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>{_STYLE}</style>"
        f"<script>{_SCRIPT}</script></head><body><h1>{title}</h1>{_summary(stats)}"
        f"<div id='filters'>{buttons} showing <span id='shown'>{len(rows)}</span> of {len(rows)}</div>"
        f"{cards}</body></html>"
    )


def write_viewer(
    rows: Sequence[Mapping[str, Any]], stats: Mapping[str, Any], path: Path, base_dir: Path
) -> Path:
    path.write_text(render_viewer(rows, stats, base_dir), encoding="utf-8")
    return path


def _summary(stats: Mapping[str, Any]) -> str:
    low, high = stats.get("accuracy_ci95", [0.0, 0.0])
    lines = [
        ("items", stats.get("items")),
        ("trajectories", stats.get("trajectories")),
        ("accuracy", _accuracy_text(stats.get("accuracy", 0.0), low, high, stats.get("ci_method"))),
        ("judge score", _fmt(stats.get("judge_score"))),
        ("turns per trajectory", _fmt(stats.get("turns"))),
        ("tool-call rate", _fmt(stats.get("tool_call_rate"))),
        ("code success rate", _fmt(stats.get("code_success_rate"))),
        ("failures", stats.get("failures")),
        ("statuses", ", ".join(f"{k}: {v}" for k, v in (stats.get("statuses") or {}).items())),
    ]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in lines)
    return f"<table id='summary'>{body}</table>"


def _accuracy_text(accuracy: float, low: float, high: float, method: Any) -> str:
    return f"{100 * accuracy:.1f}% (95% CI {100 * low:.1f}-{100 * high:.1f}, {method})"


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _card(row: Mapping[str, Any], base_dir: Path) -> str:
    correct = float(row.get("acc") or 0.0) >= 0.5
    failed = row.get("status") != "scored"
    used_tools = int(row.get("tool_calls") or 0) > 0
    verdict = (
        "<span class='badge ok'>correct</span>" if correct else "<span class='badge bad'>incorrect</span>"
    )
    badges = verdict + "".join(
        f"<span class='badge info'>{html.escape(str(text))}</span>"
        for text in (
            row.get("data_source"),
            f"rule: {row.get('rule')}",
            f"status: {row.get('status')}",
            f"{row.get('tool_successes')}/{row.get('tool_calls')} calls ok",
            f"{row.get('turns')} turns",
        )
    )
    head = html.escape(f"{row.get('item_id')} (sample {row.get('sample_index')})")
    facts = (
        f"<div><b>gold:</b> {html.escape(str(row.get('gold')))} &nbsp; "
        f"<b>prediction:</b> {html.escape(str(row.get('prediction')))}</div>"
    )
    error = f"<div><b>error:</b> {html.escape(str(row['error']))}</div>" if row.get("error") else ""
    images = iter(row.get("images") or [])
    messages = "".join(_message(message, images, base_dir) for message in row.get("conversation") or [])
    return (
        f"<div class='card {'correct' if correct else 'incorrect'}' data-correct='{int(correct)}' "
        f"data-tool='{int(used_tools)}' data-failed='{int(failed)}'><h3>{head}</h3>{badges}{facts}{error}"
        f"{messages}</div>"
    )


def _message(message: Mapping[str, Any], images, base_dir: Path) -> str:
    role = str(message.get("role", ""))
    content = message.get("content", "")
    text = content if isinstance(content, str) else " ".join(str(p.get("text", "")) for p in content)
    if role == "assistant":
        body = _assistant(text)
    else:
        body = _with_images(text, images, base_dir)
    return f"<div class='msg {html.escape(role)}'><div class='role'>{html.escape(role)}</div>{body}</div>"


def _assistant(text: str) -> str:
    """The model's prose, with each code block set apart."""
    parts, last = [], 0
    for match in _CODE.finditer(text):
        parts.append(f"<pre>{html.escape(text[last : match.start()])}</pre>")
        code = match.group(1).strip().removeprefix("```python").removesuffix("```").strip("\n")
        parts.append(f"<pre class='code'>{html.escape(code)}</pre>")
        last = match.end()
    parts.append(f"<pre>{html.escape(text[last:])}</pre>")
    return "".join(part for part in parts if part != "<pre></pre>")


def _with_images(text: str, images, base_dir: Path) -> str:
    """Text with each `<image>` marker replaced by the next image of the trajectory, inlined."""
    pieces = text.split(IMAGE_PLACEHOLDER)
    out = [f"<pre>{html.escape(pieces[0])}</pre>" if pieces[0].strip() else ""]
    for piece in pieces[1:]:
        relative = next(images, None)
        url = image_data_url(base_dir / relative) if relative else ""
        alt = html.escape(relative or "missing image")
        out.append(f"<img class='traj' src='{url}' alt='{alt}'>" if url else f"<div>[{alt}]</div>")
        if piece.strip():
            out.append(f"<pre>{html.escape(piece)}</pre>")
    return "".join(out)
