"""The decision threshold chosen on validation (evaluation/threshold.py)."""

import numpy as np
import pytest

from stereo_occ.config import EvalConfig
from stereo_occ.errors import UserError
from stereo_occ.evaluation.threshold import (
    DEFAULT_THRESHOLD,
    THRESHOLDS,
    choose_threshold,
    ious_at,
    resolved,
    validation_thresholds,
)


def test_ious_at_each_threshold_of_a_thin_wall():
    # A wall of 10 points with probability 0.6 and a halo of 10 at 0.3 on either side: a low threshold
    # fattens the wall (IoU 1/3), the right one finds it exactly, a too high one loses it (empty, 0).
    probs = np.array([0.0] * 10 + [0.3] * 10 + [0.6] * 10 + [0.3] * 10 + [0.0] * 10)
    truth = np.zeros(50, bool)
    truth[20:30] = True
    assert ious_at(probs, truth, (0.2, 0.5, 0.7)).tolist() == pytest.approx([1 / 3, 1.0, 0.0])
    # both empty counts as 1, per item along the last axis
    assert ious_at(np.zeros((2, 5)), np.zeros((2, 5), bool), (0.5,)).tolist() == [[1.0, 1.0]]


def test_choose_threshold_takes_the_best_and_breaks_ties_towards_one_half():
    assert choose_threshold((0.2, 0.4, 0.6), (0.3, 0.5, 0.4)) == (0.4, 0.5)
    assert choose_threshold((0.2, 0.45, 0.7), (0.5, 0.5, 0.5)) == (0.45, 0.5)
    with pytest.raises(ValueError):
        choose_threshold((0.2, 0.4), (0.1,))


def test_validation_tries_the_grid_unless_a_threshold_is_fixed():
    assert validation_thresholds(EvalConfig()) == THRESHOLDS
    assert THRESHOLDS[0] == 0.1 and THRESHOLDS[-1] == 0.9 and 0.5 in THRESHOLDS
    assert validation_thresholds(EvalConfig(threshold=0.3)) == (0.3,)
    with pytest.raises(UserError, match="eval.threshold"):
        validation_thresholds(EvalConfig(threshold=1.5))


def test_resolved_prefers_a_fixed_threshold_then_the_checkpoints_then_the_default():
    assert resolved(EvalConfig(threshold=0.3), 0.6).threshold == 0.3
    assert resolved(EvalConfig(), 0.6).threshold == 0.6
    assert resolved(EvalConfig(), None).threshold == DEFAULT_THRESHOLD == 0.2
