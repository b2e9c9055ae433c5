"""Running one snippet of model-written code, inside a session process, the way the model expects.

This is the semantic half of the sandbox (docs/method.md §3); isolation is elsewhere. A snippet
runs in the session's persistent globals (so variables and imports survive between turns), with
`input_image` preloaded. Like a notebook cell, a final bare expression is shown: an image or a
2-D/3-D array becomes a returned image, anything else is printed. `plt.show()` and
`Image.show()` return images instead of opening windows; `exit()` ends the snippet softly.

Images are post-processed here, inside the sandbox, so that a hostile snippet pays for its own
giant images under its own time limit: tiny ones are upscaled to `min_side` and extreme aspect
ratios dropped, as in the original, then encoded as PNG.

Standard library plus numpy and Pillow only; imported inside the sandbox as a top-level module.
"""

from __future__ import annotations

import ast
import io
import linecache
import math
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

PNG_COMPRESS_LEVEL = 1  # lossless either way; level 1 is several times faster than the default 6
PNG_SAFE_MODES = {"1", "L", "LA", "P", "RGB", "RGBA"}
MAX_FIELD_CHARS = 65536


@dataclass
class ImageLimits:
    """How returned images are filtered and bounded (mirrors SandboxConfig's fields)."""

    min_side: int = 56
    max_aspect_ratio: float = 200.0
    max_images: int = 16
    max_total_bytes: int = 32 * 1024 * 1024


@dataclass
class SnippetOutcome:
    """What a snippet did, besides what it wrote to stdout/stderr (captured at the fd level)."""

    status: str = "ok"
    error_type: str | None = None
    error_message: str | None = None
    error_line: int | None = None
    traceback: str | None = None
    result_repr: str | None = None
    images: list[Any] = field(default_factory=list)

    def header(self) -> dict[str, Any]:
        """The JSON-safe part of the outcome (images travel as separate blobs), texts capped."""
        return {
            "status": self.status,
            "error_type": cap_text(self.error_type),
            "error_message": cap_text(self.error_message),
            "error_line": self.error_line,
            "traceback": cap_text(self.traceback),
            "result_repr": cap_text(self.result_repr),
        }


def cap_text(text: str | None, limit: int = MAX_FIELD_CHARS) -> str | None:
    """Cut a long text in the middle, saying how much was cut (a repr can be gigabytes)."""
    if text is None or len(text) <= limit:
        return text
    head, tail = text[: limit * 3 // 4], text[-(limit // 4) :]
    return f"{head}\n... [truncated {len(text) - len(head) - len(tail)} characters] ...\n{tail}"


# Images shown by the snippet currently running; the patched show functions append here.
_shown: list[Any] = []


def install_display_hooks() -> None:
    """Make plt.show() and Image.show() return images instead of opening windows."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    def show_figures(*args: Any, **kwargs: Any) -> None:
        for number in plt.get_fignums():
            buffer = io.BytesIO()
            plt.figure(number).savefig(buffer, format="png")
            _shown.append(Image.open(io.BytesIO(buffer.getvalue())))
        plt.close("all")

    def show_image(self: Image.Image, title: str | None = None) -> None:
        _shown.append(self.copy())

    plt.show = show_figures
    Image.Image.show = show_image


def new_namespace(input_image: Image.Image) -> dict[str, Any]:
    """Fresh globals for a session: a `__main__`-like module with `input_image` preloaded."""
    return {"__name__": "__main__", "__builtins__": __builtins__, "input_image": input_image}


def split_final_expression(tree: ast.Module) -> tuple[ast.Module, ast.Expression | None]:
    """Separate a trailing bare expression (to be shown) from the statements before it."""
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        final = ast.Expression(tree.body[-1].value)
        return ast.Module(body=tree.body[:-1], type_ignores=[]), final
    return tree, None


def run_snippet(code: str, namespace: dict[str, Any], turn: int, limits: ImageLimits) -> SnippetOutcome:
    """Execute code in the namespace; never raises (except for signals that kill the process)."""
    filename = f"<turn {turn}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    outcome = SnippetOutcome()
    _shown.clear()
    try:
        tree = ast.parse(code, filename=filename)
        body, final = split_final_expression(tree)
        exec(compile(body, filename, "exec"), namespace)  # noqa: S102 - this is the sandboxed process
        if final is not None:
            value = eval(compile(final, filename, "eval"), namespace)
            show_final_value(value, outcome)
    except SystemExit:
        pass  # exit() and sys.exit() end a snippet softly, as in the original
    except BaseException as error:  # noqa: BLE001 - user code may raise anything, KeyboardInterrupt included
        describe_error(error, filename, outcome)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    outcome.images = prepare_images(_shown, outcome.images, limits)
    _shown.clear()
    return outcome


def show_final_value(value: Any, outcome: SnippetOutcome) -> None:
    """Turn the final expression's value into an image, or print its repr like a notebook."""
    if isinstance(value, Image.Image):
        outcome.images.append(value)
    elif isinstance(value, np.ndarray) and looks_like_image(value):
        outcome.images.append(array_to_image(value))
    elif value is not None:
        outcome.result_repr = repr(value)
        print(outcome.result_repr)


def looks_like_image(array: np.ndarray) -> bool:
    """A 2-D array, or a 3-D one with 1, 3 or 4 channels last, of numbers."""
    if array.ndim == 2:
        ok_shape = True
    else:
        ok_shape = array.ndim == 3 and array.shape[2] in (1, 3, 4)
    return ok_shape and array.size > 0 and (array.dtype.kind in "biuf")


def array_to_image(array: np.ndarray) -> Image.Image:
    """Convert an array to an 8-bit image; floats in [0, 1] are scaled to [0, 255]."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype.kind == "f":
        finite = np.nan_to_num(array)
        scale = 255.0 if finite.size and float(finite.max()) <= 1.0 else 1.0
        array = finite * scale
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def describe_error(error: BaseException, filename: str, outcome: SnippetOutcome) -> None:
    """Fill the error fields: type, message, the line in the user's code, a user-only traceback."""
    outcome.status = "error"
    outcome.error_type = type(error).__name__
    outcome.error_message = str(error)
    if isinstance(error, SyntaxError) and error.filename == filename:
        outcome.error_line = error.lineno
        outcome.error_message = error.msg
    user_frames = [
        (frame, lineno)
        for frame, lineno in traceback.walk_tb(error.__traceback__)
        if frame.f_code.co_filename.startswith("<turn ")
    ]
    current = [lineno for frame, lineno in user_frames if frame.f_code.co_filename == filename]
    if current and outcome.error_line is None:
        outcome.error_line = current[-1]
    # Keep the user's frames and the final message; the sandbox's own frames mean nothing to the model.
    summary = traceback.TracebackException.from_exception(error)
    summary.stack = traceback.StackSummary.from_list(
        [frame for frame in summary.stack if frame.filename.startswith("<turn ")]
    )
    outcome.traceback = "".join(summary.format())


def prepare_images(shown: list[Any], final: list[Any], limits: ImageLimits) -> list[bytes]:
    """Filter, upscale and PNG-encode the images of one snippet, within the count and byte caps."""
    encoded: list[bytes] = []
    total = 0
    for image in [*shown, *final]:
        if len(encoded) >= limits.max_images:
            print(f"[sandbox] only the first {limits.max_images} images are returned", file=sys.stderr)
            break
        image = normalise_image(image, limits)
        if image is None:
            continue
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        if total + buffer.tell() > limits.max_total_bytes:
            print("[sandbox] image dropped: the images of this snippet exceed the size cap", file=sys.stderr)
            break
        total += buffer.tell()
        encoded.append(buffer.getvalue())
    sys.stderr.flush()
    return encoded


def normalise_image(image: Image.Image, limits: ImageLimits) -> Image.Image | None:
    """Drop extreme aspect ratios, upscale tiny images, convert to a PNG-safe mode."""
    width, height = image.size
    if width == 0 or height == 0 or max(width, height) / min(width, height) > limits.max_aspect_ratio:
        print(f"[sandbox] image of {width}x{height} dropped: aspect ratio over "
              f"{limits.max_aspect_ratio:g}", file=sys.stderr)
        return None
    if image.mode not in PNG_SAFE_MODES:
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    if min(width, height) < limits.min_side:
        scale = limits.min_side / min(width, height)
        image = image.resize((math.ceil(width * scale), math.ceil(height * scale)), Image.Resampling.BICUBIC)
    return image
