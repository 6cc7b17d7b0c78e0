"""`loralab demo --quick` end to end: both systems run, every stage is timed, summary.json is complete.

Slow (about 2.5 minutes on 2 CPU cores, plus ~1 minute the first time to convert SmolLM2
from its GGUF into ~/.cache/loralab). Quick mode trains a few steps only, so it checks the
plumbing and the summary, not the learning (the full demo's checks do that).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    from loralab.cli.main import main
    from loralab.demo.protein_demo import find_structures_dir
    from loralab.demo.smollm import find_smollm2_gguf
    from loralab.errors import LoralabError

    try:
        find_smollm2_gguf()
        find_structures_dir()
    except LoralabError as e:
        pytest.skip(str(e))
    out = tmp_path_factory.mktemp("demo") / "demo_output"
    code = main(["demo", "--quick", "--out", str(out)])
    return out, code


def assert_checks_passed(summary: dict, code: int) -> None:
    """Every required check of the demo passed, so it said ok and exited 0 (a failed one is named)."""
    failed = [f"{c['check']}: {c['value']} (target {c['target']})"
              for c in summary["checks"] if c["required"] and not c["passed"]]  # fmt: skip
    assert not failed, "demo checks failed: " + "; ".join(failed)
    assert summary["ok"] is True and code == 0, (summary["ok"], code)


@pytest.mark.parametrize("passed", [True, False])
def test_the_check_assertion_fails_when_a_required_check_fails(passed):
    """Fast, no demo run: the assertion used above is not one that passes whatever happened."""
    summary = {"ok": passed, "checks": [
        {"check": "total wall time (s)", "value": 999, "target": "<= 180", "passed": False, "required": False},
        {"check": "protein geometry", "value": 1.0, "target": "< 0.5", "passed": passed, "required": True},
    ]}  # fmt: skip
    if passed:
        assert_checks_passed(summary, 0)
    else:
        with pytest.raises(AssertionError, match="protein geometry"):
            assert_checks_passed(summary, 1)
    with pytest.raises(AssertionError):  # a non-zero exit with every check passed is a failure too
        assert_checks_passed({**summary, "checks": summary["checks"][:1]}, 1)


@pytest.mark.slow
def test_quick_demo_runs_both_systems(quick_demo):
    out, code = quick_demo
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == {}, summary["errors"]
    assert_checks_passed(summary, code)
    stages = {(s["system"], s["name"]): s for s in summary["stages"]}
    for key in [("speech", "synth"), ("speech", "prepare"), ("speech", "train (unfreeze)"),
                ("speech", "evaluate (unfreeze)"), ("protein", "prepare"), ("protein", "train"),
                ("protein", "evaluate"), ("protein", "predict")]:  # fmt: skip
        # Rounded to 0.1 s: a quiet machine prepares 20 utterances in 0.04 s, so only >= 0 holds.
        assert stages[key]["status"] == "ok" and stages[key]["seconds"] >= 0, key
    # The per-system wall times add up to the stages' and stay within the measured total.
    assert sum(summary["wall_seconds_by_system"].values()) == pytest.approx(
        sum(s["seconds"] for s in summary["stages"]), abs=0.5
    )
    assert sum(s["seconds"] for s in summary["stages"]) <= summary["wall_seconds_total"] + 0.5


@pytest.mark.slow
def test_quick_demo_leaves_results_to_open(quick_demo):
    out, _ = quick_demo
    summary = json.loads((out / "summary.json").read_text())
    speech = summary["speech"]["runs"]["unfreeze"]
    assert Path(speech["table3_md"]).read_text().count("| Unfreeze |") >= 1
    assert Path(speech["status_md"]).is_file() and speech["plots"]
    assert all(Path(p).read_bytes()[:8] == PNG_MAGIC for p in speech["plots"])
    assert {"apa_parse_rate", "mdd_parse_rate", "acc_pcc", "per", "f1"} <= set(speech["metrics"])
    loss = speech["training_loss"]
    assert loss["steps_logged"] >= 1 and loss["first"] is not None
    protein = summary["protein"]
    atoms = [
        line
        for line in Path(protein["prediction"]["pdb"]).read_text().splitlines()
        if line.startswith("ATOM")
    ]
    assert len(atoms) == protein["prediction"]["predicted_residues"] and all(
        line[12:16] == " CA " for line in atoms
    )
    assert Path(protein["prediction"]["distances.png"]).read_bytes()[:8] == PNG_MAGIC
    assert protein["metrics"]["distance_mae"] > 0 and protein["baseline"]["distance_mae"] > 0
    assert any(c["check"].startswith("total wall time") for c in summary["checks"])
    assert any("loralab train paper_r64" in line for line in summary["real_run_commands"])
