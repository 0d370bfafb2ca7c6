"""Evaluation on SID: scoring a split (`evaluate`) and validation during training (`Evaluator`).

Modules by job: `sources` (where a pair's images come from), `scoring` (restore and
score one pair), `reports` (summaries, CSV / JSON), `run` (the evaluation run),
`validation` (the in-training evaluator).
"""

from jaxdark.evaluation.run import evaluate, evaluate_pairs
from jaxdark.evaluation.validation import Evaluator

__all__ = ["Evaluator", "evaluate", "evaluate_pairs"]
