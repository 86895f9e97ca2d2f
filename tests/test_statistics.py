"""Bootstrap intervals over objects and paired differences between models (evaluation/statistics.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stereo_occ.errors import UserError
from stereo_occ.evaluation.metrics import summarize
from stereo_occ.evaluation.statistics import (
    bootstrap_ci,
    describe_difference,
    evidence,
    object_means,
    paired_difference,
)


def rows(values_by_category: dict[str, list[float]], views: int = 1, metric: str = "iou") -> list[dict]:
    """Per-object rows as evaluate_checkpoint makes them: every view of an object gets its value."""
    out = []
    for category, values in values_by_category.items():
        for i, value in enumerate(values):
            for view in range(views):
                out.append({"object_id": f"{category}/obj-{i:03d}", "category": category, "view": view,
                            metric: float(value)})
    return out


def sample(n: int, seed: int, loc: float = 0.4, scale: float = 0.1) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    return {c: list(rng.normal(loc, scale, n)) for c in ("mug", "bowl", "bottle")}


def width(ci: list[float]) -> float:
    return ci[1] - ci[0]


def test_interval_contains_the_mean_and_narrows_with_more_objects():
    small, large = rows(sample(10, seed=1)), rows(sample(200, seed=2))
    ci_small, ci_large = bootstrap_ci(small, "iou"), bootstrap_ci(large, "iou")
    for data, ci in ((small, ci_small), (large, ci_large)):
        means = summarize(data, ["iou"])["iou"]
        for key in ("mug", "bowl", "bottle", "mean"):
            assert ci[key][0] < means[key] < ci[key][1], (key, ci[key], means[key])
    # sqrt(200 / 10) = 4.5 times narrower in theory.
    assert width(ci_large["mean"]) < 0.4 * width(ci_small["mean"])
    assert width(ci_large["mug"]) < 0.4 * width(ci_small["mug"])


def test_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(7)
    values = rng.normal(0.3, 0.1, 50)
    ci = bootstrap_ci(rows({"mug": list(values)}), "iou", n_resamples=4000)
    half = 1.96 * values.std(ddof=1) / math.sqrt(len(values))
    assert width(ci["mug"]) == pytest.approx(2 * half, rel=0.25)
    assert (ci["mug"][0] + ci["mug"][1]) / 2 == pytest.approx(values.mean(), abs=0.25 * half)
    assert ci["mean"] == ci["mug"]  # one category: the class mean is that category's mean
    assert ci["bowl"] is None and ci["bottle"] is None


def test_views_of_an_object_are_averaged_into_one_sample():
    data = sample(12, seed=3)
    one_view = rows(data, views=1)
    assert bootstrap_ci(rows(data, views=3), "iou") == bootstrap_ci(one_view, "iou")
    # Different views of one object: their mean is the object's value, and it is one sample.
    spread = []
    for row in one_view:
        for view, offset in enumerate((-0.05, 0.0, 0.05)):
            spread.append({**row, "view": view, "iou": row["iou"] + offset})
    ids, cats, values = object_means(spread, "iou")
    assert len(ids) == 36 and cats[:12] == ["mug"] * 12
    np.testing.assert_allclose(values, [r["iou"] for r in one_view], atol=1e-12)
    for a, b in zip(bootstrap_ci(spread, "iou")["mean"], bootstrap_ci(one_view, "iou")["mean"]):
        assert a == pytest.approx(b, abs=1e-12)


def test_a_model_against_itself_differs_by_exactly_zero():
    data = rows(sample(15, seed=4), views=2)
    diff = paired_difference(data, [dict(r) for r in reversed(data)], "iou")
    assert diff["mean"] == 0.0 and diff["ci"] == [0.0, 0.0]
    assert diff["significant"] is False
    assert all(diff["categories"][c] == {"mean": 0.0, "ci": [0.0, 0.0]} for c in ("mug", "bowl", "bottle"))


def test_a_constant_shift_is_significant_with_a_point_interval():
    base = rows(sample(15, seed=5), views=2)
    shifted = [{**r, "iou": r["iou"] + 0.1} for r in base]
    diff = paired_difference(shifted, base, "iou")
    assert diff["mean"] == pytest.approx(0.1, abs=1e-12)
    assert diff["ci"] == pytest.approx([0.1, 0.1], abs=1e-12)
    assert diff["significant"] is True
    assert diff["categories"]["bowl"]["ci"] == pytest.approx([0.1, 0.1], abs=1e-12)
    # The other way round: B minus A is -0.1.
    assert paired_difference(base, shifted, "iou")["ci"] == pytest.approx([-0.1, -0.1], abs=1e-12)


def test_pairing_removes_the_spread_between_objects():
    rng = np.random.default_rng(6)
    a_values = {c: rng.uniform(0.1, 0.9, 20) for c in ("mug", "bowl", "bottle")}  # hard and easy objects
    b_values = {c: v + 0.02 + rng.normal(0, 0.01, len(v)) for c, v in a_values.items()}
    a, b = rows({c: list(v) for c, v in a_values.items()}), rows({c: list(v) for c, v in b_values.items()})
    diff = paired_difference(b, a, "iou")
    ci_a, ci_b = bootstrap_ci(a, "iou"), bootstrap_ci(b, "iou")
    unpaired = math.hypot(width(ci_a["mean"]), width(ci_b["mean"]))  # width if the models were independent
    assert width(diff["ci"]) < 0.2 * unpaired
    assert diff["significant"] and diff["ci"][0] > 0
    # The separate intervals overlap, yet the paired difference is clearly positive.
    assert ci_b["mean"][0] < ci_a["mean"][1]
    # The point estimate is the difference of the class means that summarize reports.
    expected = summarize(b, ["iou"])["iou"]["mean"] - summarize(a, ["iou"])["iou"]["mean"]
    assert diff["mean"] == pytest.approx(expected, abs=1e-12)


def test_mismatched_items_are_refused_with_their_names():
    a = rows(sample(4, seed=8), views=2)
    b = [r for r in a if not (r["object_id"] == "bowl/obj-002" and r["view"] == 1)]
    with pytest.raises(UserError, match="only in A: bowl/obj-002 view 1"):
        paired_difference(a, b, "iou")
    with pytest.raises(UserError, match="only in B: bowl/obj-002 view 1"):
        paired_difference(b, a, "iou")
    with pytest.raises(UserError, match="listed twice"):
        paired_difference(a + a[:1], a, "iou")
    with pytest.raises(UserError, match="no 'chamfer_l1'"):
        bootstrap_ci(a, "chamfer_l1")
    with pytest.raises(UserError, match="results of stereo and mono.*only in mono: bowl/obj-002 view 1"):
        evidence({"mono": a, "stereo": b}, metrics=["iou"], n_resamples=50)


def test_missing_and_single_object_categories():
    data = rows({"mug": [0.2, 0.4, 0.5], "bowl": [0.7]})
    ci = bootstrap_ci(data, "iou")
    assert ci["bottle"] is None
    assert ci["bowl"] is None  # one object: no interval, and none for the class mean it enters
    assert ci["mug"] is not None and ci["mean"] is None
    diff = paired_difference(data, data, "iou")
    assert diff["categories"]["bottle"] is None and diff["categories"]["bowl"] == {"mean": 0.0, "ci": None}
    assert diff["ci"] is None and diff["significant"] is False
    two = bootstrap_ci(rows({"mug": [0.2, 0.4, 0.5], "bowl": [0.7, 0.6]}), "iou")
    assert two["mean"] is not None and two["mean"][0] < (0.65 + 0.3667) / 2 < two["mean"][1]
    empty = bootstrap_ci([], "iou")
    assert empty == {"mug": None, "bowl": None, "bottle": None, "mean": None}
    nothing = paired_difference([], [], "iou")
    assert nothing["mean"] is None and nothing["ci"] is None and nothing["significant"] is False


def test_results_depend_only_on_the_seed():
    a = rows(sample(30, seed=9))
    b = [{**r, "iou": r["iou"] + 0.01 * (i % 3 - 1)} for i, r in enumerate(a)]
    assert bootstrap_ci(a, "iou", seed=3) == bootstrap_ci(a, "iou", seed=3)
    assert bootstrap_ci(a, "iou", seed=3) != bootstrap_ci(a, "iou", seed=4)
    assert paired_difference(b, a, "iou", seed=3) == paired_difference(b, a, "iou", seed=3)
    assert paired_difference(b, a, "iou", seed=3)["ci"] != paired_difference(b, a, "iou", seed=4)["ci"]


def test_bad_settings_are_user_errors():
    data = rows(sample(3, seed=10))
    with pytest.raises(UserError, match="at least 1 resample"):
        bootstrap_ci(data, "iou", n_resamples=0)
    with pytest.raises(UserError, match="between 0 and 1"):
        paired_difference(data, data, "iou", level=95)


def test_evidence_names_pairs_later_minus_earlier():
    base = sample(8, seed=11)
    per_model = {
        name: rows({c: [v + shift for v in values] for c, values in base.items()}, views=2)
        for name, shift in (("mono", 0.0), ("stereo", 0.05))
    }
    for r in per_model["mono"]:
        r["chamfer_l1"] = 0.05
    for r in per_model["stereo"]:
        r["chamfer_l1"] = 0.04
    intervals, differences = evidence(per_model, metrics=("iou", "chamfer_l1"), n_resamples=200)
    assert set(intervals) == {"mono", "stereo"}
    assert set(intervals["stereo"]) == {"iou_ci", "chamfer_l1_ci"}
    assert intervals["stereo"]["iou_ci"] == bootstrap_ci(per_model["stereo"], "iou", n_resamples=200)
    assert list(differences) == ["stereo-mono"]
    entry = differences["stereo-mono"]
    assert entry["iou"]["mean"] == pytest.approx(0.05) and entry["iou"]["significant"]
    assert entry["chamfer_l1"]["mean"] == pytest.approx(-0.01)
    assert entry["n_objects"] == 24 and entry["n_items"] == 48 and entry["models"] == ["stereo", "mono"]

    four = {name: per_model["mono"] for name in ("a", "b", "c", "d")}
    _, differences = evidence(four, metrics=("iou",), n_resamples=20)
    assert list(differences) == ["b-a", "c-a", "d-a", "c-b", "d-b", "d-c"]


def test_sentences_say_which_model_is_better_and_whether_it_is_significant():
    sig = {"mean": 0.066, "ci": [0.031, 0.102], "significant": True}
    assert describe_difference("stereo-mono", "iou", sig, True) == (
        "stereo-mono: stereo's IoU is higher by 0.066 (95% CI 0.031 to 0.102): significant."
    )
    unsure = {"mean": -0.012, "ci": [-0.04, 0.016], "significant": False}
    assert describe_difference("stereo-mono", "iou", unsure, True) == (
        "stereo-mono: stereo's IoU is lower by 0.012 (95% CI -0.040 to 0.016): not significant: "
        "the interval includes 0."
    )
    chamfer = {"mean": -0.0042, "ci": [-0.0071, -0.0013], "significant": True}
    text = describe_difference("stereo-mono", "chamfer_l1", chamfer, False)
    assert "Chamfer-L1 is lower by 0.0042" in text and "so stereo is better" in text
    assert text.endswith(": significant.")
    worse = describe_difference("stereo-mono", "chamfer_l1", {"mean": 0.003, "ci": [-0.001, 0.007]}, False)
    assert "higher by" in worse and "so mono looks better" in worse and "not significant" in worse
    hyphen = describe_difference("a-b-c", "iou", sig, True, models=["a-b", "c"])
    assert hyphen.startswith("a-b-c: a-b's IoU is higher")
    assert "no IoU difference" in describe_difference("x-y", "iou", {"mean": None, "ci": None}, True)
