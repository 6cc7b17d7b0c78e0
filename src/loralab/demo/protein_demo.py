"""The protein half of the demo: real structures -> prepare -> train -> evaluate -> predict -> status.

Structures: the single-chain PDB files of the ``mdanalysistests`` source package
(``MDAnalysisTests/data/dssp/*.pdb.gz``, public-domain PDB entries; installed with
``--no-deps``, located without importing it) and, when Debian's ``python3-promod3`` is
installed (``make sysdeps`` installs it as root, once, outside the demo's budget),
``plan.protein_promod3_chains`` chains of the ProMod3 StructureDB (40-128 residues, spread
over the database; the README gives the time each takes). Without ProMod3 the demo still runs on the package's
chains and says so. Backbone: SmolLM2-135M-Instruct as a plain Llama folder
(:func:`loralab.demo.smollm.ensure_smollm2_llama`), preset ``protein/cpu``.

Acceptance (issue 12), checked on the evaluation and the predicted PDB and put in the
summary: every predicted structure has a mean consecutive CA-CA in 3.6-4.0 A and < 1% of
non-adjacent pairs closer than 3.5 A; on >= 30 test chains the model beats the
separation-mean baseline (same run) on distance MAE, long-range P@L/5 and TM-score. Issue 28's
skill targets (MAE <= 5 A, Pearson >= 0.7, P@L/5 >= 0.15, TM >= 0.25 and >= 1.25x the
baseline's) and the status report's own four targets are reported beside them, not required.

The **backbone ablation** (issue 28): the same preset with ``protein_head.backbone_layers=0``
(the pretrained token embeddings, no transformer layer; same head, trunk, steps and split) is
trained and evaluated in the same run, so the summary shows what SmolLM2's layers add.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import shutil
from pathlib import Path

from loralab.demo.protein_checks import acceptance, comparison_lines, structure_geometry
from loralab.demo.stages import StageClock
from loralab.errors import LoralabError

PROTEIN_PRESET = "protein/cpu"
CHAIN_LENGTHS = (40, 128)  # the preset's protein.max_length: no chain is cropped
ABLATION_OVERRIDE = "protein_head.backbone_layers=0"
# A larger test share than prepare's default 10%: >= 30 test chains from ~210 (the training
# set is what the CPU budget pays for).
DEMO_SPLIT = {"train": 0.75, "val": 0.08, "test": 0.17}
# For orientation only (another model, benchmark and scale): ESM-2 35M, CAMEO.
ESM2_35M_LONG_RANGE_P_AT_L = 0.284
STRUCTURES_PACKAGE = "MDAnalysisTests"
STRUCTURES_SUBDIR = "data/dssp"
# Files the package ships on purpose as broken input for its own tests.
DELIBERATELY_BROKEN = ("_failing",)
# Headline figures copied into summary.json (the evaluation's metrics.json has them all).
HEADLINE = (
    "distance_mae",
    "distance_rmse",
    "distance_pearson",
    "mds_quality",
    "contact_p_at_L_sep24",
    "contact_p_at_L5_sep24",
    "rmsd",
    "tm_score",
    "lddt",
    "gdt_ts",
)


def find_structures_dir() -> Path:
    """``MDAnalysisTests/data/dssp`` of the installed package, or a clear error saying how to get it."""
    spec = importlib.util.find_spec(STRUCTURES_PACKAGE)
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / STRUCTURES_SUBDIR
        if path.is_dir():
            return path
    raise LoralabError(
        "real protein structures not found (the MDAnalysisTests package's data/dssp folder). "
        "Install them with: pip install --no-deps mdanalysistests"
    )


def collect_structures(dest: Path, limit: int | None) -> list[Path]:
    """Copy the package's single-chain PDB files (sorted; the first ``limit``) into ``dest``."""
    files = sorted(
        p for p in find_structures_dir().glob("*.pdb.gz") if not any(b in p.name for b in DELIBERATELY_BROKEN)
    )
    if limit is not None:
        files = files[:limit]
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(p, dest / p.name)) for p in files]


def _first_test_protein(dataset_dir: Path) -> tuple[str, str]:
    """(id, sequence) of the first test-split chain: the one the demo predicts a PDB for."""
    from loralab.protein.prepare import read_dataset

    records = read_dataset(dataset_dir, "test") or read_dataset(dataset_dir, None)
    if not records:
        raise LoralabError(f"{dataset_dir}: the prepared data set holds no chains")
    return records[0].id, records[0].sequence


def validation_by_epoch(run_dir: Path) -> list[dict]:
    """Validation distance MAE beside the baseline's, per epoch (the trainer's eval events)."""
    from loralab.engine.events import read_events

    rows = []
    for e in read_events(run_dir):
        metrics = e.get("metrics", {})
        if e.get("event") == "eval" and e.get("split") is None and "distance_mae" in metrics:
            rows.append(
                {
                    "epoch": e.get("epoch"),
                    "distance_mae": metrics["distance_mae"],
                    "baseline_distance_mae": metrics.get("baseline_distance_mae"),
                }
            )
    return rows


def _status(run_dir: Path) -> dict:
    from loralab.reports.status import build_status
    from loralab.reports.status_report import write_status_files

    files = write_status_files(build_status(run_dir))
    return {"status_md": str(files.markdown), "plots": [str(p) for p in files.plots]}


def run_protein(
    out_dir: Path, plan, backbone_dir: Path, clock: StageClock, result: dict | None = None
) -> dict:
    """The whole protein demo under ``out_dir/protein``; fills and returns its part of summary.json."""
    from loralab.config import load_config
    from loralab.demo.speech_demo import training_loss
    from loralab.engine.trainer import train

    root = out_dir / "protein"
    dataset_dir = root / "dataset"
    result = {} if result is None else result
    result["backbone"] = str(backbone_dir)
    _prepare_data(root, plan, clock, result)
    overrides = [
        f"model.name_or_path={backbone_dir}",
        f"protein.dataset_dir={dataset_dir}",
        f"output_dir={root / 'runs' / 'protein_cpu'}",
        f"training.epochs={plan.protein_epochs}",
        f"training.seed={plan.seed}",
    ]
    cfg = load_config(PROTEIN_PRESET, overrides)
    with clock.stage(
        "protein", "train", f"{PROTEIN_PRESET}, {cfg.training.epochs} epoch(s), SmolLM2 backbone"
    ):
        run_dir = Path(train(cfg))
    gc.collect()  # the training model goes before evaluation loads its own
    result["run_dir"] = str(run_dir)
    result["training_loss"] = training_loss(run_dir)
    result["validation_by_epoch"] = validation_by_epoch(run_dir)
    _evaluate(run_dir, clock, result)
    _predict_one(run_dir, dataset_dir, root / "predict", clock, result)
    if plan.protein_ablation:
        result["ablation"] = _backbone_ablation(root, overrides, clock)
    else:
        clock.skip("protein", "ablation train", f"not in the {plan.mode} plan (its command: README)")
    for line in comparison_lines(result):
        clock.log(line)
    result["acceptance"] = acceptance(result, plan.mode == "full")
    for check in result["acceptance"]:
        clock.log(f"[{'ok' if check['passed'] else 'FAIL'}] {check['check']}: {check['value']}")
    with clock.stage("protein", "status"):
        result.update(_status(run_dir))
    return result


def _prepare_data(root: Path, plan, clock: StageClock, result: dict) -> None:
    """Real structures (and ProMod3 chains when installed) -> ``root/dataset``; notes the sources."""
    from loralab.protein.prepare import prepare_structures
    from loralab.protein.promod3_source import INSTALL_HINT, promod3_missing_reason

    structures, dataset_dir = root / "structures", root / "dataset"
    result.update({"structures": str(structures), "dataset": str(dataset_dir)})
    missing = promod3_missing_reason() if plan.protein_promod3_chains else "not asked for"
    source = "mdanalysistests" + (
        "" if missing else f" + {plan.protein_promod3_chains} ProMod3 StructureDB chains"
    )
    with clock.stage("protein", "prepare", f"real structures: {source} (loralab protein prepare)"):
        files = collect_structures(structures, plan.protein_structures)
        prepare_structures(
            structures, dataset_dir, seed=plan.seed, progress=False, min_length=CHAIN_LENGTHS[0],
            max_length=CHAIN_LENGTHS[1], promod3=None if missing else "auto", split_fractions=DEMO_SPLIT,
            promod3_limit=plan.protein_promod3_chains,
        )  # fmt: skip
    summary = json.loads((dataset_dir / "summary.json").read_text())
    result["sources"] = {"mdanalysistests_files": len(files), "promod3": None if missing else "auto"}
    if missing and plan.protein_promod3_chains:
        result["sources"]["promod3_missing"] = f"{missing}; {INSTALL_HINT}"
        clock.log(f"ProMod3 StructureDB not used ({missing}): apt-get install -y python3-promod3")
    result["structure_files"] = len(files)
    result["chains"] = {split: info.get("chains") for split, info in summary.get("splits", {}).items()}
    clock.log(f"{len(files)} structure files -> chains per split: {result['chains']}")


def _backbone_ablation(root: Path, overrides: list[str], clock: StageClock) -> dict:
    """The same preset, steps and split on the token embeddings alone (no transformer layer):
    trained and evaluated on the test split as the main model (module doc)."""
    from loralab.config import load_config
    from loralab.engine.trainer import train

    out = root / "runs" / "protein_cpu_embeddings"
    ablation = [
        *[o for o in overrides if not o.startswith("output_dir=")],
        f"output_dir={out}",
        ABLATION_OVERRIDE,
    ]
    cfg = load_config(PROTEIN_PRESET, ablation)
    with clock.stage(
        "protein", "ablation train", "backbone ablation: token embeddings only, no transformer layer"
    ):
        run_dir = Path(train(cfg))
    gc.collect()
    part: dict = {
        "what": "same head, trunk, steps and split; the backbone's token embeddings without its transformer layers",
        "command": f"loralab train {PROTEIN_PRESET} {' '.join(ablation)}",
        "run_dir": str(run_dir),
    }
    _evaluate(run_dir, clock, part, stage="ablation evaluate")
    part.pop("esm2_35m_long_range_p_at_L_cameo", None)  # said once, beside the main model
    return part


def _evaluate(run_dir: Path, clock: StageClock, result: dict, stage: str = "evaluate") -> None:
    """The last checkpoint on the test split (``loralab evaluate``): metrics beside the baseline."""
    from loralab.protein.evaluate import evaluate_run
    from loralab.protein.report import seed_target_rows

    with clock.stage(
        "protein", stage, "last checkpoint on the test split, beside the separation-mean baseline"
    ):
        eval_root = Path(evaluate_run(run_dir, checkpoints="last", split="test"))
    metrics_files = sorted(
        eval_root.glob("epoch-*/metrics.json"), key=lambda p: int(p.parent.name.split("-")[1])
    )
    evaluation = json.loads(metrics_files[-1].read_text()) if metrics_files else {}
    result["eval_dir"] = str(eval_root)
    result["summary_md"] = str(eval_root / "summary.md")
    result["metrics"] = {k: evaluation.get("model", {}).get(k) for k in HEADLINE}
    result["baseline"] = {k: evaluation.get("baseline", {}).get(k) for k in HEADLINE}
    result["test_chains"] = evaluation.get("num_proteins")
    result["esm2_35m_long_range_p_at_L_cameo"] = ESM2_35M_LONG_RANGE_P_AT_L
    result["geometry"] = structure_geometry(metrics_files[-1].parent / "per_protein.csv")
    result["seed_targets"] = seed_target_rows(evaluation.get("model", {}), evaluation.get("baseline", {}))


def _predict_one(run_dir: Path, dataset_dir: Path, out: Path, clock: StageClock, result: dict) -> None:
    """``loralab protein predict`` on the first test chain: distance map, C-alpha trace, PDB."""
    from loralab.protein.predict import predict_sequences

    name, sequence = _first_test_protein(dataset_dir)
    with clock.stage("protein", "predict", f"distance map, C-alpha trace and PDB for test chain {name}"):
        predictions = predict_sequences(run_dir, [(name, sequence)], out)
    predicted = predictions[0]
    result["prediction"] = {
        "chain": name,
        "length": predicted["length"],
        "predicted_residues": predicted["predicted_length"],  # < length: cropped to protein.max_length
        "notes": predicted["notes"],
        **{kind: str(out / file) for kind, file in predicted["files"].items()},
        "geometry": predicted.get("geometry"),
    }
