"""The protein demo's report of issue 28: skill targets, the backbone ablation beside the model
and the baseline, and the status report's targets (pure functions of the evaluation figures)."""

from __future__ import annotations

from loralab.demo.protein_checks import acceptance, comparison_lines, skill_checks
from loralab.protein.report import seed_target_rows

MODEL = {"distance_mae": 4.9, "distance_rmse": 7.2, "distance_pearson": 0.71, "mds_quality": 0.69,
         "contact_p_at_L5_sep24": 0.149, "tm_score": 0.26}  # fmt: skip
BASELINE = {"distance_mae": 6.0, "distance_rmse": 8.0, "distance_pearson": 0.53, "mds_quality": 0.5,
            "contact_p_at_L5_sep24": 0.02, "tm_score": 0.2}  # fmt: skip


def test_skill_checks_apply_each_target_and_the_tm_ratio():
    checks = {c["check"].split(": ")[1].rsplit(" (", 1)[0]: c for c in skill_checks(MODEL, BASELINE, 84)}
    assert checks["distance MAE (A)"]["passed"] and checks["distance Pearson"]["passed"]
    assert not checks["long-range P@L/5"]["passed"]  # 0.149 < 0.15
    assert checks["TM-score"]["passed"]
    assert (
        checks["TM-score vs the baseline's"]["value"] == "x1.30"
        and checks["TM-score vs the baseline's"]["passed"]
    )
    assert not any(c["required"] for c in checks.values())
    low = skill_checks({**MODEL, "tm_score": 0.24}, BASELINE, 84)
    assert [c["passed"] for c in low[-2:]] == [False, False]  # 0.24 < 0.25 and x1.20 < x1.25


def test_seed_targets_compare_with_the_status_reports_thresholds():
    rows = {r["metric"]: r for r in seed_target_rows(MODEL, BASELINE)}
    assert [rows[k]["met"] for k in ("distance_mae", "distance_rmse", "distance_pearson", "mds_quality")] == [
        True, False, True, False]  # fmt: skip
    assert rows["distance_rmse"]["target"] == "< 7" and rows["mds_quality"]["baseline"] == 0.5
    assert seed_target_rows({}, {})[0]["met"] is None


def test_the_demo_log_puts_the_ablation_between_model_and_baseline():
    ablation = {**MODEL, "distance_mae": 5.5}
    result = {"metrics": MODEL, "baseline": BASELINE, "ablation": {"metrics": ablation}, "test_chains": 84,
              "seed_targets": seed_target_rows(MODEL, BASELINE), "geometry": {"mean_ca_ca_range": [3.7, 3.8],
              "max_clash_fraction": 0.0}, "prediction": {"geometry": {"mean_ca_ca": 3.8, "clash_fraction": 0.0}}}  # fmt: skip
    lines = comparison_lines(result)
    assert lines[0].startswith("protein test (84 chains)")
    assert [line.split(":")[0].strip() for line in lines[1:4]] == [
        "LoRA backbone", "token embeddings only", "separation-mean baseline"]  # fmt: skip
    assert lines[2].split(": ")[1].startswith("5.500, 7.200, 0.710")
    assert "status report target MDS reconstruction quality > 0.7: 0.690 (not met)" in lines[-1]
    names = [c["check"] for c in acceptance(result, full=True)]
    assert sum(n.startswith("protein skill:") for n in names) == 5
