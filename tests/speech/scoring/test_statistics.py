"""The statistics users publish (issue 16, item 4): Spearman beside every Pearson, and
percentile bootstrap intervals for each PCC and for MDD F1, checked against scipy and against
a plain loop over explicitly drawn resamples."""

from __future__ import annotations

import json
import math
import random
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from loralab.json_numbers import jsonable
from loralab.speech.data.records import SentenceScores
from loralab.speech.reports.tables import read_epoch_summaries, write_tables
from loralab.speech.scoring.epoch_metrics import compute_metrics, summary_row
from loralab.speech.scoring.mdd import MddCounts, mdd_counts, mdd_metrics
from loralab.speech.scoring.metrics import (
    apa_metrics,
    bootstrap_f1,
    bootstrap_f1_ci,
    bootstrap_pcc,
    bootstrap_pcc_ci,
    bootstrap_weights,
    correlation,
    f1_from_counts,
    per_accuracy_correlation,
)
from loralab.speech.scoring.parse import parse_answer

ASPECTS = ("accuracy", "fluency", "prosodic", "total")


def scores_pair(n: int, seed: int, noise: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Human scores 0-10 and predictions that follow them with noise (true r about 0.75),
    rounded to integers as the model's digits are: ties included."""
    rng = np.random.default_rng(seed)
    human = np.clip(np.round(rng.normal(6.5, 2.0, n)), 0, 10)
    pred = np.clip(np.round(human + rng.normal(0, noise, n)), 0, 10)
    return pred, human


def weights_from(indices: np.ndarray, n: int) -> np.ndarray:
    return np.stack([np.bincount(row, minlength=n) for row in indices]).astype(float)


# --- Spearman ---------------------------------------------------------------------------


def test_scc_equals_scipy_spearman_with_ties():
    pred, human = scores_pair(120, seed=1)
    assert len(np.unique(pred)) < 120  # ties: the average-rank case
    expected = stats.spearmanr(pred, human).statistic
    assert correlation(pred, human)["spearman"] == pytest.approx(expected, abs=1e-12)
    # ... in apa_metrics per aspect, and in the summary row beside the PCC.
    answers = [
        parse_answer(
            "apa", json.dumps({"accuracy": int(p), "fluency": int(h), "prosodic": int(p), "total": 5 + i % 2})
        )
        for i, (p, h) in enumerate(zip(pred, human))
    ]
    human_scores = [{a: float(h) for a in ASPECTS} for h in human]
    row = summary_row({"apa": apa_metrics(answers, human_scores)})
    assert row["acc_scc"] == pytest.approx(expected, abs=1e-12)
    assert row["pros_scc"] == pytest.approx(expected, abs=1e-12)
    assert row["flu_scc"] == pytest.approx(1.0)
    total_pred = [5 + i % 2 for i in range(120)]
    assert row["total_scc"] == pytest.approx(stats.spearmanr(total_pred, human).statistic, abs=1e-12)
    assert row["acc_pcc"] == pytest.approx(stats.pearsonr(pred, human).statistic, abs=1e-12)


def test_per_vs_accuracy_has_spearman():
    per = [0.1, 0.4, 0.2, 0.7, 0.05, 0.3]
    human = [9, 5, 8, 3, 9, 6]
    out = per_accuracy_correlation(per, human, human)
    assert out["human"]["spearman"] == pytest.approx(stats.spearmanr(per, human).statistic)


# --- Bootstrap of the PCC ------------------------------------------------------------------


def test_bootstrap_weights_count_the_draws():
    w = bootstrap_weights(37, n_resamples=200, seed=3)
    assert w.shape == (200, 37) and (w.sum(axis=1) == 37).all() and (w >= 0).all()
    assert np.array_equal(w, bootstrap_weights(37, n_resamples=200, seed=3))  # seeded
    assert not np.array_equal(w, bootstrap_weights(37, n_resamples=200, seed=4))
    # Uniform draws: every item drawn about once per resample on average.
    assert w.mean(axis=0) == pytest.approx(np.ones(37), abs=0.25)


def test_bootstrap_pcc_equals_pearson_of_each_drawn_resample():
    pred, human = scores_pair(60, seed=2)
    rng = np.random.default_rng(9)
    indices = rng.integers(0, 60, size=(50, 60))
    fast = bootstrap_pcc(pred, human, weights_from(indices, 60))
    slow = [stats.pearsonr(pred[i], human[i]).statistic for i in indices]
    assert fast == pytest.approx(slow, abs=1e-10)


def test_bootstrap_pcc_ci_covers_the_point_estimate():
    pred, human = scores_pair(300, seed=5)
    r = correlation(pred, human)["pcc"]
    lo, hi = bootstrap_pcc_ci(pred, human)
    assert -1 <= lo < r < hi <= 1
    # Percentile interval of the resampled PCCs, reproducible from the seed.
    assert bootstrap_pcc_ci(pred, human) == [lo, hi]
    resampled = bootstrap_pcc(pred, human, bootstrap_weights(300))
    assert [lo, hi] == pytest.approx(list(np.percentile(resampled, [2.5, 97.5])))
    narrow = bootstrap_pcc_ci(pred, human, confidence=0.5)
    assert lo < narrow[0] < narrow[1] < hi


def test_bootstrap_pcc_ci_shrinks_with_more_data():
    small = bootstrap_pcc_ci(*scores_pair(50, seed=7))
    large = bootstrap_pcc_ci(*scores_pair(800, seed=7))
    width_small, width_large = small[1] - small[0], large[1] - large[0]
    # Width goes as 1/sqrt(n): 16 times the data, about a quarter of the width.
    assert width_large < width_small / 2.5
    assert width_large > width_small / 8


def test_constant_prediction_gives_no_ci_and_no_crash():
    _, human = scores_pair(100, seed=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bootstrap_pcc_ci([7.0] * 100, human) is None
        assert bootstrap_pcc_ci(human, [3] * 100) is None
        assert bootstrap_pcc_ci([1, 2], [1, 2]) is None  # too few pairs for a PCC
        assert bootstrap_pcc_ci([], []) is None
        # Resamples that happen to draw one value only are left out, not a crash.
        r = bootstrap_pcc([1, 2, 3, 4], [2, 1, 4, 3], weights_from(np.array([[0, 0, 0, 0], [0, 1, 2, 3]]), 4))
        assert math.isnan(r[0]) and r[1] == pytest.approx(0.6)


def test_ci_of_a_mostly_degenerate_bootstrap_is_none():
    # Three pairs: a PCC, but most resamples draw fewer than 3 distinct pairs (or only the 5s).
    assert not math.isnan(correlation([5, 5, 6], [1, 2, 3])["pcc"])
    assert bootstrap_pcc_ci([5, 5, 6], [1, 2, 3]) is None
    # One pair off the constant among 20: about 1/e of the resamples miss it; those are left out.
    pred, human = [5] * 19 + [6], list(range(20))
    r = bootstrap_pcc(pred, human, bootstrap_weights(20))
    assert 0.25 < np.isnan(r).mean() < 0.5
    lo, hi = bootstrap_pcc_ci(pred, human)
    assert lo <= correlation(pred, human)["pcc"] <= hi


# --- Bootstrap of MDD F1 -------------------------------------------------------------------


def random_counts(n: int, seed: int) -> list[MddCounts]:
    rng = random.Random(seed)
    return [
        MddCounts(
            rng.randint(10, 40), rng.randint(0, 3), rng.randint(0, 3), rng.randint(0, 3), rng.randint(0, 1)
        )
        for _ in range(n)
    ]


def test_f1_from_counts_matches_mdd_counts_f1():
    cases = random_counts(50, seed=1) + [
        MddCounts(5, 0, 0, 0, 0),  # precision and recall 0/0
        MddCounts(5, 2, 0, 0, 0),  # recall 0/0
        MddCounts(5, 0, 2, 0, 0),  # precision 0/0
        MddCounts(5, 2, 2, 0, 0),  # both 0: F1 0
        MddCounts(0, 0, 0, 3, 1),  # perfect detection
    ]
    for c in cases:
        ours = float(f1_from_counts([c.ta, c.fr, c.fa, c.cd, c.de]))
        assert (math.isnan(ours) and math.isnan(c.f1)) or ours == pytest.approx(c.f1), c


def test_bootstrap_f1_equals_pooled_f1_of_each_drawn_resample():
    counts = random_counts(40, seed=2)
    indices = np.random.default_rng(5).integers(0, 40, size=(30, 40))
    fast = bootstrap_f1(counts, weights_from(indices, 40))
    slow = [sum((counts[i] for i in row), MddCounts()).f1 for row in indices]
    assert fast == pytest.approx(slow, abs=1e-12)


def test_f1_ci_covers_the_pooled_f1_and_shrinks():
    counts = random_counts(400, seed=3)
    pooled = sum(counts, MddCounts()).f1
    lo, hi = bootstrap_f1_ci(counts)
    assert 0 <= lo < pooled < hi <= 1
    small = bootstrap_f1_ci(counts[:25])
    assert (hi - lo) < (small[1] - small[0]) / 2


def test_f1_ci_undefined_when_nothing_is_rejected():
    # The canonical-phone answer never rejects a phone: precision 0/0, F1 undefined.
    canonical = ["K AE T", "D AO G", "B ER D"] * 10
    human = ["K AH T", "D AO G", "B ER T"] * 10
    counts = [mdd_counts(c, h, c) for c, h in zip(canonical, human)]
    assert math.isnan(mdd_metrics(canonical, human, canonical)["f1"])
    assert bootstrap_f1_ci(counts) is None
    assert bootstrap_f1_ci([]) is None


# --- metrics.json and Table 3 --------------------------------------------------------------


class FakeStore:
    def __init__(self, raws: dict[tuple[str, str], str]):
        self.raws = raws

    def get(self, utterance_id: str, task: str) -> dict | None:
        raw = self.raws.get((utterance_id, task))
        return None if raw is None else {"raw": raw}


def fake_evaluation(n: int, seed: int, constant_fluency: bool = False):
    rng = random.Random(seed)
    phones = ["K", "AE", "T", "D", "AO", "G", "S", "IY"]
    records, raws = [], {}
    for i in range(n):
        human = {a: float(rng.randint(2, 10)) for a in ASPECTS}
        pred = {a: int(min(10, max(0, round(h + rng.gauss(0, 1.5))))) for a, h in human.items()}
        if constant_fluency:
            pred["fluency"] = 8
        canonical = [rng.choice(phones) for _ in range(rng.randint(4, 9))]
        heard = [p if rng.random() > 0.2 else rng.choice(phones) for p in canonical]
        said = [p if rng.random() > 0.15 else rng.choice(phones) for p in heard]
        rid = f"u{i:04d}"
        records.append(
            SimpleNamespace(
                id=rid,
                scores=SentenceScores(
                    human["accuracy"], 10.0, human["fluency"], human["prosodic"], human["total"]
                ),
                word_transcript="the cat",
                text="the cat",
                canonical_phones=" ".join(canonical),
                pronounced_phones=" ".join(heard),
            )
        )
        raws[(rid, "apa")] = json.dumps(pred)
        raws[(rid, "mdd")] = json.dumps({"word_transcript": "the cat", "phoneme_transcript": " ".join(said)})
    return records, FakeStore(raws)


def test_compute_metrics_stores_scc_and_cis(tmp_path):
    records, store = fake_evaluation(200, seed=4)
    metrics = compute_metrics(records, store, ["apa", "mdd"], None)
    assert metrics["bootstrap"]["n_resamples"] == 1000 and metrics["bootstrap"]["confidence"] == 0.95
    row = metrics["summary"]
    for key, aspect in (("acc", "accuracy"), ("flu", "fluency"), ("pros", "prosodic"), ("total", "total")):
        stats_ = metrics["apa"][aspect]
        lo, hi = stats_["pcc_ci"]
        assert lo < stats_["pcc"] < hi
        assert (row[f"{key}_pcc_ci_low"], row[f"{key}_pcc_ci_high"]) == (lo, hi)
        assert row[f"{key}_scc"] == stats_["spearman"]
    det = metrics["mdd"]["detection"]
    lo, hi = det["f1_ci"]
    assert lo < det["f1"] < hi and (row["f1_ci_low"], row["f1_ci_high"]) == (lo, hi)
    # Resampling the per-utterance counts of exactly the utterances mdd_metrics pooled.
    said = [json.loads(store.get(r.id, "mdd")["raw"])["phoneme_transcript"] for r in records]
    counts = [mdd_counts(r.canonical_phones, r.pronounced_phones, p) for r, p in zip(records, said)]
    assert det["f1_ci"] == bootstrap_f1_ci(counts)
    # No resamples: no intervals, everything else as before.
    plain = compute_metrics(records, store, ["apa", "mdd"], None, n_resamples=0)
    assert "bootstrap" not in plain and "pcc_ci" not in plain["apa"]["accuracy"]
    assert "f1_ci" not in plain["mdd"]["detection"] and math.isnan(plain["summary"]["f1_ci_low"])
    assert plain["summary"]["acc_pcc"] == row["acc_pcc"] and plain["summary"]["f1"] == row["f1"]


def test_constant_aspect_in_metrics_json_and_table(tmp_path):
    records, store = fake_evaluation(60, seed=6, constant_fluency=True)
    metrics = compute_metrics(records, store, ["apa", "mdd"], None)
    assert metrics["apa"]["fluency"]["pcc_ci"] is None
    written = json.loads(json.dumps(jsonable(metrics), allow_nan=False))  # strict JSON
    assert written["summary"]["flu_pcc"] is None and written["summary"]["flu_pcc_ci_low"] is None
    assert written["summary"]["flu_scc"] is None
    epoch_dir = tmp_path / "epoch-1"
    epoch_dir.mkdir()
    (epoch_dir / "metrics.json").write_text(json.dumps(written))
    write_tables(tmp_path, read_epoch_summaries(tmp_path), strategy="lora", title="t")
    ours = next(line for line in (tmp_path / "table3.md").read_text().splitlines() if "| ours |" in line)
    cells = [c.strip() for c in ours.strip("|").split("|")]
    assert cells[4] == "–" and cells[3].count("[") == 1  # Flu PCC undefined; Acc PCC with its CI
    assert cells[13] == "–"  # Flu SCC


def test_table3_shows_scc_and_ci(tmp_path):
    records, store = fake_evaluation(150, seed=12)
    metrics = compute_metrics(records, store, ["apa", "mdd"], None)
    row = metrics["summary"]
    write_tables(tmp_path, {1: metrics}, strategy="lora", title="t")
    lines = (tmp_path / "table3.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| Strategy"))
    assert "| Rec | Acc SCC | Flu SCC | Pros SCC | Total SCC | Acc MAE |" in header
    assert "| Acc spread | Flu spread | Pros spread | Total spread | APA parsed |" in header
    ours = next(line for line in lines if "| ours |" in line)
    acc = f"{row['acc_pcc']:.3f} [{row['acc_pcc_ci_low']:.3f}, {row['acc_pcc_ci_high']:.3f}]"
    f1 = f"{row['f1']:.3f} [{row['f1_ci_low']:.3f}, {row['f1_ci_high']:.3f}]"
    assert f"| ours | {acc} |" in ours and f"| {f1} |" in ours
    assert f"| {row['total_scc']:.3f} | {row['acc_mae']:.3f} |" in ours
    assert f"| {row['total_spread']:.3f} | 100.0% |" in ours
    # The paper's row has no SCC; the difference row neither.
    paper = next(line for line in lines if "| paper |" in line)
    blanks = "  |" * 10  # the paper reports no MAE or spread, nor parse rates
    assert paper.endswith("| 0.682 | – | – | – | – |" + blanks)
    diff = next(line for line in lines if "| ours - paper |" in line)
    assert "[" not in diff and diff.endswith("| – | – | – | – |" + blanks)
    assert "bootstrap 95% percentile interval over 1000 resamples" in "\n".join(lines)
    import csv

    with (tmp_path / "table3.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert float(rows[0]["acc_scc"]) == pytest.approx(row["acc_scc"])
    assert float(rows[0]["f1_ci_high"]) == pytest.approx(row["f1_ci_high"])
    assert rows[1]["acc_scc"] == "" and rows[1]["source"] == "paper"


def test_old_metrics_json_without_cis_still_renders(tmp_path):
    row = {
        k: 0.5
        for k in ("acc_pcc", "flu_pcc", "pros_pcc", "total_pcc", "wer", "per", "f1", "precision", "recall")
    }
    row.update(apa_parse_rate=1.0, mdd_parse_rate=1.0, diagnosis_accuracy=0.5)
    write_tables(tmp_path, {2: {"n_utterances": 3, "summary": row}}, strategy="lora", title="t")
    ours = next(line for line in (tmp_path / "table3.md").read_text().splitlines() if "| ours |" in line)
    assert ours.startswith("| LoRA | 2 | ours | 0.500 | 0.500 |") and "[" not in ours


def test_aspects_alone_replace_the_joint_answer_and_the_gop_estimates_are_scored_alone():
    from scipy import stats as scipy_stats

    records, store = fake_evaluation(80, seed=9)
    rng = random.Random(1)
    rows = {"apa_accuracy": {}, "apa_total": {}}
    for r in records:
        for task, aspect in (("apa_accuracy", "accuracy"), ("apa_total", "total")):
            alone = int(min(10, max(0, round(getattr(r.scores, aspect) + rng.gauss(0, 1)))))
            rows[task][r.id] = {"raw": json.dumps({aspect: alone}), "estimate": rng.randint(0, 10)}

    class Store(FakeStore):
        def get(self, utterance_id, task):
            return rows[task][utterance_id] if task in rows else super().get(utterance_id, task)

    both = Store(store.raws)
    metrics = compute_metrics(records, both, ["apa", "apa_accuracy", "apa_total", "mdd"], None, n_resamples=0)
    joint_fluency = [json.loads(store.get(r.id, "apa")["raw"])["fluency"] for r in records]
    assert metrics["apa"]["fluency"]["pcc"] == pytest.approx(
        scipy_stats.pearsonr(joint_fluency, [r.scores.fluency for r in records])[0]
    )
    for task, aspect, name in (("apa_accuracy", "accuracy", "acc"), ("apa_total", "total", "total")):
        human = [getattr(r.scores, aspect) for r in records]
        alone = [json.loads(rows[task][r.id]["raw"])[aspect] for r in records]
        assert metrics["apa"][aspect]["pcc"] == pytest.approx(scipy_stats.pearsonr(alone, human)[0])
        estimates = [rows[task][r.id]["estimate"] for r in records]
        assert metrics["summary"][f"gop_estimate_{name}_pcc"] == pytest.approx(
            scipy_stats.pearsonr(estimates, human)[0]
        )
    assert "gop_estimate" not in compute_metrics(records, store, ["apa", "mdd"], None, n_resamples=0)


def test_correlation_reports_error_and_spread_that_a_pcc_cannot_see():
    from loralab.speech.scoring.metrics import correlation

    human = [2.0, 4.0, 6.0, 8.0, 10.0]
    flat = [7.9, 7.95, 8.0, 8.05, 8.1]  # a constant with a wobble: perfect PCC, no skill
    out = correlation(flat, human)
    assert out["pcc"] == pytest.approx(1.0)
    assert out["mae"] == pytest.approx((5.9 + 3.95 + 2.0 + 0.05 + 1.9) / 5)
    assert out["spread_ratio"] == pytest.approx(np.std([-0.1, -0.05, 0, 0.05, 0.1]) / np.std(human))
    assert correlation([3.0, 3.0, 3.0], [1.0, 2.0, 3.0])["spread_ratio"] == 0.0
