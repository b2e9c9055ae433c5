"""What one execution in the sandbox returns.

The original detected failures by searching the output for "Error" or "timeout"; here the
outcome is an explicit `status`, so a reward can say `success = result.status == "ok"` and a
snippet that prints the word "Error" is not a failed call. Everything else the model may see
(stdout, stderr, the exception, the images) is carried as data, and the one observation
formatter (`codedance_core.chat_format.observation`) decides how to render it.

Results travel between processes and into datasets, so they serialise to plain JSON
(`to_dict`/`from_dict`, images as base64 PNG).
"""

from __future__ import annotations

import base64
import io
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from PIL import Image

Status = Literal["ok", "error", "timeout", "killed", "output_limit"]
STATUSES: tuple[str, ...] = get_args(Status)


@dataclass
class ExecResult:
    """The outcome of running one snippet in a session.

    status: ok (ran to the end, or ended with exit()), error (raised an exception, syntax
    errors included), timeout (wall-clock limit hit, killed), killed (the process died: a
    crash, an rlimit, os._exit, a lost worker), output_limit (flooded stdout/stderr, killed).
    After any status but ok the session's state has been reset.
    stdout already contains the printed repr of a final non-image expression; `result_repr`
    repeats it on its own. stdout and stderr are capped with a truncation marker.
    """

    status: Status
    stdout: str = ""
    stderr: str = ""
    error_type: str | None = None
    error_message: str | None = None
    error_line: int | None = None
    traceback: str | None = None
    result_repr: str | None = None
    images: list[bytes] = field(default_factory=list)
    wall_time_s: float = 0.0

    def __repr__(self) -> str:
        sizes = ", ".join(f"{len(png)} B" for png in self.images)
        return (f"ExecResult(status={self.status!r}, stdout={self.stdout[:200]!r}, stderr={self.stderr[:200]!r}, "
                f"error_type={self.error_type!r}, error_message={self.error_message!r}, "
                f"error_line={self.error_line!r}, result_repr={self.result_repr!r}, images=[{sizes}], "
                f"wall_time_s={self.wall_time_s:.4f})")

    @property
    def ok(self) -> bool:
        """True when the snippet ran without error (the tool-call success of the BAT reward)."""
        return self.status == "ok"

    def pil_images(self) -> list[Image.Image]:
        """The returned images, decoded."""
        return [Image.open(io.BytesIO(png)) for png in self.images]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; images become base64 strings."""
        data = asdict(self)
        data["images"] = [base64.b64encode(png).decode("ascii") for png in self.images]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecResult:
        """Inverse of `to_dict`."""
        images = [base64.b64decode(text) for text in data.get("images", [])]
        return cls(**{**data, "images": images})

    @classmethod
    def from_reply(cls, reply: dict[str, Any], images: list[bytes]) -> ExecResult:
        """Build a result from a template's reply frame, checking every field's type."""
        status = reply.get("status")
        if status not in STATUSES:
            raise ValueError(f"unknown execution status {status!r}")

        def text(name: str) -> str | None:
            value = reply.get(name)
            return value if value is None or isinstance(value, str) else str(value)

        line = reply.get("error_line")
        return cls(
            status=status,
            stdout=text("stdout") or "",
            stderr=text("stderr") or "",
            error_type=text("error_type"),
            error_message=text("error_message"),
            error_line=line if isinstance(line, int) else None,
            traceback=text("traceback"),
            result_repr=text("result_repr"),
            images=list(images),
            wall_time_s=float(reply.get("wall_time_s") or 0.0),
        )
