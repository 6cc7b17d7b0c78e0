"""Scoring a protein prediction against the true structure, and the baseline every figure is
compared with.

* :class:`SeparationMeanBaseline`: the mean training C-alpha distance at each sequence
  separation (the "no learning" reference, fit on the run's training split).
* :func:`score_distances`: distance MAE/RMSE/Pearson (overall and by separation) and contact
  precision; :func:`score_structure`: RMSD, TM-score, lDDT, GDT-TS of the MDS reconstruction
  (minimum over mirror images) and its geometry; :func:`score_chain`: one chain's CSV row.
* :func:`mean_metrics`: means over chains; :func:`validation_metrics`: the trainer's per-epoch
  hook (model and baseline on the validation split).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_PAIRS_PER_SEPARATION = 20
ROW_INFO = ("id", "length", "evaluated_length", "cropped", "observed")


def mean_metrics(rows: list[dict]) -> dict[str, float]:
    """Mean over chains of each numeric metric (NaN entries, e.g. no long-range pairs, skipped)."""
    keys = (
        [k for k, v in rows[0].items() if k not in ROW_INFO and isinstance(v, (int, float))] if rows else []
    )
    out = {}
    for k in keys:
        values = [float(r[k]) for r in rows if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])]
        out[k] = float(np.mean(values)) if values else math.nan
    return out


@dataclass
class SeparationMeanBaseline:
    """Predicts the mean training C-alpha distance for each sequence separation |i - j|.

    Separations seen in fewer than :data:`MIN_PAIRS_PER_SEPARATION` training pairs (the
    far tail) take the mean of the last separation that has enough.
    """

    means: np.ndarray  # [max_separation + 1], means[0] = 0
    counts: np.ndarray

    @classmethod
    def fit(cls, examples) -> SeparationMeanBaseline:
        from loralab.protein.dataset import pairwise_distances

        longest = max((e.length for e in examples), default=2)
        sums, counts = np.zeros(longest), np.zeros(longest, dtype=np.int64)
        for e in examples:
            D = pairwise_distances(e.coords)
            i, j = np.triu_indices(e.length, 1)
            ok = e.mask[i] & e.mask[j]
            sep = (j - i)[ok]
            np.add.at(sums, sep, D[i[ok], j[ok]].astype(np.float64))
            np.add.at(counts, sep, 1)
        means = np.zeros(longest)
        last = 3.8  # bonded neighbours, if even separation 1 were unseen
        for s in range(1, longest):
            if counts[s] >= MIN_PAIRS_PER_SEPARATION:
                last = sums[s] / counts[s]
            means[s] = last
        return cls(means=means, counts=counts)

    def predict(self, length: int) -> np.ndarray:
        idx = np.arange(length)
        sep = np.minimum(np.abs(idx[:, None] - idx[None, :]), len(self.means) - 1)
        return self.means[sep].astype(np.float32)


def true_distances(example) -> np.ndarray:
    """True C-alpha distances [L, L]; NaN for pairs with a missing residue."""
    from loralab.protein.geometry import distance_matrix

    coords = np.where(example.mask[:, None], example.coords, np.nan)
    return distance_matrix(coords)


def _prefixed(metrics: dict, prefix: str) -> dict:
    return {k if k.startswith(prefix) else prefix + k: v for k, v in metrics.items()}


def score_distances(pred_D, example, contact_scores=None) -> dict[str, float]:
    """Distance errors and contact precision (ranked by ``contact_scores`` when given)."""
    from loralab.protein.metrics import contact_precision, distance_metrics

    true_D = true_distances(example)
    out = _prefixed(distance_metrics(pred_D, true_D, example.mask), "distance_")
    contacts = contact_precision(pred_D, true_D, example.mask, scores=contact_scores)
    out.update(_prefixed(contacts, "contact_"))
    return out


def score_structure(pred_D, example, refine: bool = True) -> tuple[dict, np.ndarray]:
    """Structure metrics of the MDS reconstruction (min over mirror images) and the chosen
    coordinates superposed on the true frame."""
    from loralab.protein.dataset import decode_residues
    from loralab.protein.geometry import decide_handedness, rmsd_superposed, superpose
    from loralab.protein.inference import mds_coordinates
    from loralab.protein.metrics import gdt_ts, lddt_ca, tm_score
    from loralab.protein.reconstruct import geometry_check

    X, fit_stress = mds_coordinates(pred_D, refine=refine)
    m = example.mask
    true_X = np.where(m[:, None], example.coords, np.nan).astype(np.float64)
    by_reference = decide_handedness(X, reference=true_X, mask=m)
    by_rule = decide_handedness(X)
    chosen = superpose(by_reference.apply(X), true_X, m)
    seq = decode_residues(example.residue_index)
    metrics = {
        "rmsd": rmsd_superposed(chosen, true_X, m),
        "tm_score": float(tm_score(chosen, true_X, seq, m)),
        "lddt": float(lddt_ca(chosen, true_X, m)),
        "gdt_ts": float(gdt_ts(chosen, true_X, m)),
        "mirror_chosen": float(by_reference.mirrored),
        "handedness_rule_agrees": float(by_rule.mirrored == by_reference.mirrored),
        "mds_stress": fit_stress,
        "mds_quality": mds_quality(X, example),
    }
    geometry = geometry_check(chosen)
    metrics.update({k: float(geometry[k]) for k in ("mean_ca_ca", "clashes", "clash_fraction", "sane")})
    return metrics, chosen


def mds_quality(X, example) -> float:
    """The status report's "MDS reconstruction quality": Pearson r between the C-alpha distances of
    the reconstructed coordinates and the true distances, over the pairs i < j of observed
    residues (rotation, translation and mirror invariant; 1 = the true shape up to scale)."""
    from loralab.protein.geometry import distance_matrix
    from loralab.protein.metrics import distance_metrics

    return distance_metrics(distance_matrix(X), true_distances(example), example.mask)["pearson"]


def validation_metrics(model, dataset, baseline, batch_size: int, runtime) -> dict[str, float]:
    """Distance metrics on the validation set, model and baseline (the trainer's per-epoch hook)."""
    from loralab.protein.inference import predict_distance_matrices

    examples = [dataset[i] for i in range(len(dataset))]
    contacts: list = []
    preds = predict_distance_matrices(model, examples, batch_size, runtime, contacts=contacts)
    model_rows = [score_distances(p, e, c) for p, e, c in zip(preds, examples, contacts)]
    base_rows = [score_distances(baseline.predict(e.length), e) for e in examples]
    keys = ("distance_mae", "distance_rmse", "distance_pearson", "contact_p_at_L5_sep24")
    ours, base = mean_metrics(model_rows), mean_metrics(base_rows)
    out = {k: ours[k] for k in keys}
    out.update({f"baseline_{k}": base[k] for k in keys})
    out["mae_ratio_to_baseline"] = ours["distance_mae"] / base["distance_mae"]
    out["num_proteins"] = float(len(examples))
    return out


def score_chain(example, full_length: int, pred, contact_scores) -> tuple[dict, np.ndarray]:
    """One chain's row of ``per_protein.csv`` (sizes, distance, contact and structure metrics) and
    its chosen coordinates superposed on the true frame."""
    row = {
        "id": example.id,
        "length": full_length,
        "evaluated_length": example.length,
        "cropped": int(example.length < full_length),
    }
    row["observed"] = int(example.mask.sum())
    row.update(score_distances(pred, example, contact_scores))
    structure, X = score_structure(pred, example)
    row.update(structure)
    return row, X


def map_chains(fn, items, workers: int | None = None):
    """``fn`` over ``items`` (chains: independent), yielded in order, on a thread pool of one worker per
    available core, each with one BLAS thread. The per-chain work (reconstruction: SMACOF and
    L-BFGS on [L, L] arrays) is too small for a multi-threaded BLAS, which then only adds
    overhead; chains side by side use the cores instead (benchmarks: the same rows, ~2x faster
    on 2 cores)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    items = list(items)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = max(1, min(workers or cores, len(items)))
    with threadpool_limits(limits=1):
        if n == 1:
            yield from map(fn, items)
            return
        with ThreadPoolExecutor(n) as pool:
            yield from pool.map(fn, items)
