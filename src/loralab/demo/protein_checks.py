"""The protein demo's figures and checks: the geometry of the predicted structures, issue
12's acceptance (required in the full demo) and issue 28's skill targets (reported)."""

from __future__ import annotations

from pathlib import Path

from loralab.demo.stages import check_row

MIN_TEST_CHAINS = 30
# Issue 28's targets for the demo's model (key, label, comparison, value) and TM vs the baseline.
SKILL_TARGETS = (
    ("distance_mae", "distance MAE (A)", "<=", 5.0),
    ("distance_pearson", "distance Pearson", ">=", 0.70),
    ("contact_p_at_L5_sep24", "long-range P@L/5", ">=", 0.15),
    ("tm_score", "TM-score", ">=", 0.25),
)
TM_RATIO_TARGET = 1.25


def structure_geometry(per_protein_csv: Path) -> dict:
    """Geometry of the evaluation's predicted structures: the worst chain's figures."""
    import csv

    with per_protein_csv.open() as f:
        rows = list(csv.DictReader(f))
    bonds = [float(r["mean_ca_ca"]) for r in rows if r.get("mean_ca_ca")]
    clash = [float(r["clash_fraction"]) for r in rows if r.get("clash_fraction")]
    return {
        "structures": len(rows),
        "mean_ca_ca_range": [min(bonds), max(bonds)] if bonds else None,
        "max_clash_fraction": max(clash) if clash else None,
        "total_clashes": int(sum(float(r["clashes"]) for r in rows if r.get("clashes"))),
    }


def comparison_lines(result: dict) -> list[str]:
    """The test figures of the model, the backbone ablation and the baseline, and the status
    report's targets, as the demo's log shows them."""
    rows = [("LoRA backbone", result["metrics"]), ("token embeddings only", (result.get("ablation") or {}).get("metrics")),
            ("separation-mean baseline", result["baseline"])]  # fmt: skip
    keys = (
        "distance_mae",
        "distance_rmse",
        "distance_pearson",
        "mds_quality",
        "contact_p_at_L5_sep24",
        "tm_score",
    )
    lines = [f"protein test ({result.get('test_chains')} chains): " + ", ".join(keys)]
    for name, m in rows:
        if m:
            lines.append(
                f"  {name}: " + ", ".join("n/a" if m.get(k) is None else f"{m[k]:.3f}" for k in keys)
            )
    for t in result.get("seed_targets", []):
        met = "n/a" if t["met"] is None else "met" if t["met"] else "not met"
        value = "n/a" if t["model"] is None else f"{t['model']:.3f}"
        lines.append(f"  status report target {t['label']} {t['target']}: {value} ({met})")
    return lines


def acceptance(result: dict, full: bool) -> list[dict]:
    """Issue 12's acceptance checks (:mod:`loralab.demo.protein_demo`); required in the full demo."""
    m, b, geo = result["metrics"], result["baseline"], result["geometry"]
    pred_geo = result["prediction"].get("geometry") or {}
    lo, hi = geo["mean_ca_ca_range"] or (float("nan"), float("nan"))
    n = result.get("test_chains") or 0
    checks = [
        check_row("protein predicted structures: mean consecutive CA-CA (A), every chain", f"{lo:.2f}-{hi:.2f}",
               "3.6-4.0", 3.6 <= lo and hi <= 4.0 and 3.6 <= pred_geo.get("mean_ca_ca", 0) <= 4.0, full),
        check_row("protein predicted structures: non-adjacent CA pairs < 3.5 A, worst chain",
               f"{100 * (geo['max_clash_fraction'] or 0):.2f}%", "< 1%",
               (geo["max_clash_fraction"] or 0) < 0.01 and pred_geo.get("clash_fraction", 1) < 0.01, full),
        check_row("protein test chains (clustered split)", n, f">= {MIN_TEST_CHAINS}", n >= MIN_TEST_CHAINS, full),
    ]  # fmt: skip
    for key, label, better in (
        ("distance_mae", "distance MAE (A)", lambda x, y: x < y),
        ("contact_p_at_L5_sep24", "long-range P@L/5", lambda x, y: x > y),
        ("tm_score", "TM-score", lambda x, y: x > y),
    ):
        x, y = m.get(key), b.get(key)
        ok = x is not None and y is not None and better(x, y)
        value = f"{x:.3f} vs {y:.3f}" if ok or (x is not None and y is not None) else f"{x} vs {y}"
        checks.append(check_row(f"protein {label}: model vs separation-mean baseline", value,
                             "model better", ok, full))  # fmt: skip
    return checks + skill_checks(m, b, n)


def skill_checks(m: dict, b: dict, n: int) -> list[dict]:
    """Issue 28's skill targets on the test split (reported, not required: see the README)."""
    rows = []
    for key, label, op, target in SKILL_TARGETS:
        x = m.get(key)
        ok = x is not None and (x <= target if op == "<=" else x >= target)
        rows.append(check_row(f"protein skill: {label} ({n} test chains)", "n/a" if x is None else f"{x:.3f}",
                           f"{op} {target}", ok, False))  # fmt: skip
    x, y = m.get("tm_score"), b.get("tm_score")
    ratio = x / y if x is not None and y else None
    rows.append(check_row("protein skill: TM-score vs the baseline's", "n/a" if ratio is None else f"x{ratio:.2f}",
                       f">= x{TM_RATIO_TARGET}", ratio is not None and ratio >= TM_RATIO_TARGET, False))  # fmt: skip
    return rows
