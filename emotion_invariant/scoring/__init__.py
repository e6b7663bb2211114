"""Verification scoring: embeddings, cosine scores, normalisation, metrics."""

from emotion_invariant.scoring.compat import EER, minDCF
from emotion_invariant.scoring.conditions import condition_masks
from emotion_invariant.scoring.embeddings import (
    check_embeddings,
    load_embeddings,
    save_embeddings,
)
from emotion_invariant.scoring.errors import ScoringError
from emotion_invariant.scoring.extract import extract_embeddings
from emotion_invariant.scoring.metrics import (
    act_dcf,
    cllr,
    det_curve,
    eer,
    metrics_by_group,
    min_dcf,
    verification_metrics,
)
from emotion_invariant.scoring.norm import NORMS
from emotion_invariant.scoring.pipeline import score_trials
from emotion_invariant.scoring.report import (
    build_report,
    verification_report,
    write_report,
)
from emotion_invariant.scoring.trial_list import (
    Trials,
    drop_missing,
    read_trials,
    write_scores,
)

__all__ = [
    "EER",
    "NORMS",
    "ScoringError",
    "Trials",
    "act_dcf",
    "build_report",
    "check_embeddings",
    "cllr",
    "condition_masks",
    "det_curve",
    "drop_missing",
    "eer",
    "extract_embeddings",
    "load_embeddings",
    "metrics_by_group",
    "minDCF",
    "min_dcf",
    "read_trials",
    "save_embeddings",
    "score_trials",
    "verification_metrics",
    "verification_report",
    "write_report",
    "write_scores",
]
