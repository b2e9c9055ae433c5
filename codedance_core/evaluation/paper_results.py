"""The CodeDance paper's reported accuracies, to print beside ours (docs/paper-results.md).

Source: the CodeDance paper's main table (Song et al., 2025, arXiv 2512.17312), CodeDance-7B, as
summarised in docs/method.md §8. Keys are registry benchmark names; values are accuracy in percent.
"""

from __future__ import annotations

PAPER_SOURCE = "CodeDance paper (arXiv 2512.17312), main table, as summarised in docs/method.md §8"
PAPER_MODEL = "CodeDance-7B"

PAPER_ACCURACY: dict[str, float] = {
    "vstar": 84.8,
    "countbench": 91.2,
    "chartqa": 87.5,
    "mathvista": 70.3,
    "mathverse": 46.8,
    "mathvision": 29.6,
    "wemath": 39.6,
    "hrbench_4k": 75.2,
    "pixmo_count": 77.1,
}


def paper_accuracy(benchmark: str) -> float | None:
    """The paper's accuracy (percent) on a registry benchmark; None where it reports none."""
    return PAPER_ACCURACY.get(benchmark)
