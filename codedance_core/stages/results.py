"""What stages return: small, typed records of where their outputs are and what they measured.

They travel between Prefect tasks (and are persisted as task results), so they hold references
(`ArtifactRef`: URI + digest + rows) and figures, never data.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from codedance_core.storage import ArtifactRef


class StageResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TrainedModel(StageResult):
    """A trained policy and the per-step metrics of the run that made it."""

    model: ArtifactRef
    metrics: ArtifactRef | None = None
    steps: int = 0
    resumed_from: str | None = None  # the checkpoint the run went on from, if it did
    quarantine: ArtifactRef | None = None  # the training rows set aside, each with its reason
    quarantined_rows: int = 0


class FilterOutcome(StageResult):
    """The rows weak-to-strong filtering kept (with pass rate and bucket), and its report."""

    kept: ArtifactRef
    report: dict[str, Any]
    markdown: str = ""


class SynthesisOutcome(StageResult):
    """Verified trajectories (SFT rows), the rejected items with their reasons, and statistics."""

    rows: ArtifactRef
    rejects: ArtifactRef | None
    stats: dict[str, Any]


class Evaluation(StageResult):
    """One checkpoint scored on one benchmark."""

    label: str
    model: ArtifactRef
    benchmark: ArtifactRef
    stats: dict[str, Any]
    results: ArtifactRef

    def score(self, metric: str) -> float:
        value = self.stats.get(metric)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise KeyError(f"evaluation {self.label!r} has no numeric {metric!r}; it has {sorted(self.stats)}")
        return float(value)


class Promotion(StageResult):
    """A registered model version and whether it became the champion, with the reason."""

    name: str
    version: str
    score: float
    champion: str | None
    champion_score: float | None
    promoted: bool
    reason: str


def describe(result: Any) -> str:
    """One line for a table of what a flow did."""
    if isinstance(result, ArtifactRef):
        rows = f", {result.rows} rows" if result.rows is not None else ""
        return f"{result.uri} ({result.short_digest}{rows})"
    if isinstance(result, TrainedModel):
        return f"{describe(result.model)}; {result.steps} steps"
    if isinstance(result, FilterOutcome):
        return f"kept {describe(result.kept)}"
    if isinstance(result, SynthesisOutcome):
        rejected = result.rejects.rows if result.rejects is not None else 0
        return f"{describe(result.rows)}; {rejected} items rejected"
    if type(result).__name__ == "ValidationReport":  # data/validate.py's; not imported for this line
        return f"{result.good_rows} good rows, {result.bad_rows} quarantined"
    if isinstance(result, Evaluation):
        stats = result.stats
        not_judged = f" ({stats['not_judged']} not judged: judge_error)" if stats.get("not_judged") else ""
        return (f"accuracy {stats.get('accuracy', 0):.3f} on {stats.get('items', '?')} items{not_judged}; "
                f"tool calls per trajectory {stats.get('tool_calls_per_trajectory', 0):.2f}")
    if isinstance(result, Promotion):
        return f"{result.name} v{result.version} score {result.score:.3f}: " + (
            "champion" if result.promoted else f"not promoted ({result.reason})")
    return str(result)[:200]
