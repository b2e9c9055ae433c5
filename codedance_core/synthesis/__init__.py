"""Verified trajectory synthesis: RL items become SFT trajectories whose code really ran.

- `steps`: what a writer proposes (tool steps, the answer) and how turns are narrated;
- `count`, `search`, `chart`, `arithmetic`: program writers per suite family (`direct` included);
- `failures`: planned first attempts that fail for real and are corrected;
- `teacher`: the open-ended path, a teacher model behind an OpenAI-compatible endpoint;
- `verify`: execution turn by turn in the sandbox, answer scoring, SFT row assembly;
- `pipeline`: a whole file, streamed, with rejects and `stats`.

    from codedance_core.synthesis import synthesize_file
    report = synthesize_file("rl.parquet", "sft.parquet", SynthesisConfig(), rejects_uri="rejects.parquet")
"""

from codedance_core.synthesis.pipeline import (
    Outcome,
    SynthesisReport,
    synthesize_file,
    synthesize_file_async,
    synthesize_item,
    synthesize_rows,
)
from codedance_core.synthesis.stats import SynthesisStats
from codedance_core.synthesis.verify import Rejected, Trajectory

__all__ = [
    "Outcome",
    "Rejected",
    "SynthesisReport",
    "SynthesisStats",
    "Trajectory",
    "synthesize_file",
    "synthesize_file_async",
    "synthesize_item",
    "synthesize_rows",
]
