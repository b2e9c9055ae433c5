"""What filtering did to each data_source: bucket counts, mean pass rate, pass-rate histogram.

The point of the report is to make the filter's effect visible per source: a source whose
items are nearly all trivial for the weak model (the suite's `direct` family, say) should show
up as mostly dropped, and visual sources as mostly kept. Three forms of the same numbers:
`filter_report.json` for machines, `filter_report.md` (a table) for people and MLflow, and
`filter_pass_rates.png`, one histogram per source over the k+1 possible pass rates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from codedance_core.config.filtering import BUCKET_QUARANTINED, BUCKET_TRIVIAL, BUCKETS


@dataclass
class SourceCounts:
    """One data_source's rows per bucket and its pass rates (for the mean and the histogram)."""

    buckets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    pass_rates: list[float] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(self.buckets.values())

    @property
    def kept(self) -> int:
        return self.rows - self.buckets[BUCKET_TRIVIAL] - self.buckets[BUCKET_QUARANTINED]


@dataclass
class FilterReport:
    """Per-source counts of one filtering run; k sets the histogram's bins (pass rates are i/k)."""

    k: int
    sources: dict[str, SourceCounts] = field(default_factory=dict)

    def add(self, data_source: str, bucket: str, pass_rate: float | None) -> None:
        counts = self.sources.setdefault(data_source, SourceCounts())
        counts.buckets[bucket] += 1
        if pass_rate is not None:
            counts.pass_rates.append(pass_rate)

    def totals(self) -> SourceCounts:
        total = SourceCounts()
        for counts in self.sources.values():
            for bucket, n in counts.buckets.items():
                total.buckets[bucket] += n
            total.pass_rates.extend(counts.pass_rates)
        return total

    def histogram(self, counts: SourceCounts) -> list[int]:
        """Items per pass rate 0/k, 1/k, ..., k/k (a pass rate over fewer graded answers rounds)."""
        bins = [0] * (self.k + 1)
        for rate in counts.pass_rates:
            bins[round(rate * self.k)] += 1
        return bins

    def to_dict(self) -> dict:
        def one(counts: SourceCounts) -> dict:
            rates = counts.pass_rates
            return {
                "rows": counts.rows,
                "kept": counts.kept,
                **counts.buckets,
                "mean_pass_rate": round(sum(rates) / len(rates), 4) if rates else None,
                "histogram": self.histogram(counts),
            }

        return {
            "k": self.k,
            "histogram_bins": [round(i / self.k, 4) for i in range(self.k + 1)],
            "total": one(self.totals()),
            "by_source": {name: one(counts) for name, counts in sorted(self.sources.items())},
        }

    def markdown(self) -> str:
        data = self.to_dict()
        header = "| data_source | rows | kept | " + " | ".join(BUCKETS) + " | mean pass rate |"
        lines = [header, "|" + "---|" * (len(BUCKETS) + 4)]
        for name, row in [*data["by_source"].items(), ("**total**", data["total"])]:
            mean = "" if row["mean_pass_rate"] is None else f"{row['mean_pass_rate']:.3f}"
            cells = [name, row["rows"], row["kept"], *(row[b] for b in BUCKETS), mean]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        return "\n".join(lines) + "\n"

    def write(self, report_dir: str | Path) -> list[str]:
        """Write the JSON, markdown and PNG forms into `report_dir`; their paths."""
        out = Path(report_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "filter_report.json", out / "filter_report.md", out / "filter_pass_rates.png"]
        paths[0].write_text(json.dumps(self.to_dict(), indent=2))
        paths[1].write_text(self.markdown())
        self.plot(paths[2])
        return [str(path) for path in paths]

    def plot(self, path: str | Path) -> None:
        """One bar chart per data_source of how many items had each pass rate."""
        import matplotlib

        matplotlib.use("Agg")  # no display on workers; set before pyplot is imported
        import matplotlib.pyplot as plt

        names = sorted(self.sources) or ["(no rows)"]
        figure, axes = plt.subplots(len(names), 1, figsize=(6, 1.8 * len(names) + 0.6), squeeze=False)
        labels = [f"{i}/{self.k}" for i in range(self.k + 1)]
        for axis, name in zip(axes[:, 0], names, strict=True):
            counts = self.sources.get(name, SourceCounts())
            axis.bar(labels, self.histogram(counts), color="tab:blue")
            axis.set_title(f"{name}: {counts.kept} kept of {counts.rows}", fontsize=9)
            axis.set_ylabel("items", fontsize=8)
            axis.tick_params(labelsize=7)
        axes[-1, 0].set_xlabel("weak-model pass rate")
        figure.tight_layout()
        figure.savefig(path, dpi=80)
        plt.close(figure)
