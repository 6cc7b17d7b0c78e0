"""Sequence-identity clusters and the train/val/test split built on them.

Method (documented in ``summary.json`` by :data:`CLUSTERING_METHOD`):

* Identity of two sequences: optimal alignment (biotite ``align_optimal``; BLOSUM62,
  affine gaps -12/-1, i.e. BLAST's 11 + 1 per residue; end gaps free so a fragment can sit
  anywhere in a longer chain); identical aligned residues divided by the length of the
  shorter sequence (the CD-HIT convention). Over the 1,225 pairs of 50 unrelated chains of
  MDAnalysisTests' ``dssp/`` set this gives at most 0.28 (99th percentile 0.22), so the
  default threshold 0.3 separates them while catching homologs.
* Clusters: single linkage. Two chains share a cluster when a chain of pairs, each at or
  above the threshold, links them. Unlike greedy representative clustering this
  guarantees that no pair of chains in different clusters (hence different splits)
  reaches the threshold. Pairs already linked are not aligned, so homologous sets cost
  fewer alignments; unrelated sets cost all N(N-1)/2, which is why large sets are prefiltered
  (the cost per alignment is measured in the README).
* Large sets (more than :data:`EXHAUSTIVE_LIMIT` chains, e.g. the ProMod3 StructureDB):
  only pairs that pass a k-mer prefilter are aligned, as FASTA and MMseqs2 do: at least 2
  identical 3-mers on diagonals within 16 of each other. A heuristic: a homolog pair whose
  identities never line up as two 3-mers on one diagonal band would be missed. On 40
  ProMod3 chains every pair at >= 0.2 identity passed it (``tests/protein``), while most
  unrelated pairs are skipped.
* Split: clusters, largest first (random order among equal sizes, seeded), each go to the
  split furthest below its target number of chains.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

CLUSTERING_METHOD = (
    "single-linkage clusters of pairwise sequence identity (biotite align_optimal, BLOSUM62, "
    "gaps -12/-1, free end gaps; identity = identical aligned residues / shorter length); "
    "whole clusters assigned to splits, largest first"
)
# Above this many chains only the prefilter's candidate pairs are aligned (module doc).
EXHAUSTIVE_LIMIT = 300
KMER, BAND, MIN_HITS = 3, 16, 2


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _aligner():
    import biotite.sequence as bseq
    import biotite.sequence.align as balign

    matrix = balign.SubstitutionMatrix.std_protein_matrix()

    def to_sequence(text: str):
        # biotite's protein alphabet knows the 20 letters and X (and B, Z, U, O, *).
        return bseq.ProteinSequence(text)

    def identity(a, b) -> float:
        alignment = balign.align_optimal(
            a, b, matrix, gap_penalty=(-12, -1), terminal_penalty=False, max_number=1
        )[0]
        return float(balign.get_sequence_identity(alignment, mode="shortest"))

    return to_sequence, identity


def sequence_identity(a: str, b: str) -> float:
    """Identity of two one-letter sequences (see the module docstring), in [0, 1]."""
    to_sequence, identity = _aligner()
    return identity(to_sequence(a), to_sequence(b))


def _kmer_codes(sequence: str, k: int) -> np.ndarray:
    letters = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8).astype(np.int64) - ord("A")
    if len(letters) < k:
        return np.zeros(0, dtype=np.int64)
    codes = np.zeros(len(letters) - k + 1, dtype=np.int64)
    for t in range(k):
        codes = codes * 26 + letters[t : len(letters) - k + 1 + t]
    return codes


def candidate_pairs(sequences: Sequence[str], k: int = KMER, band: int = BAND, min_hits: int = MIN_HITS):
    """Pairs (i, j), i > j, sharing at least ``min_hits`` identical k-mers on nearby diagonals
    (offsets within ``band`` of each other): the FASTA/MMseqs2-style prefilter (module doc)."""
    codes = [_kmer_codes(s, k) for s in sequences]
    code = np.concatenate(codes) if codes else np.zeros(0, np.int64)
    seq = np.concatenate([np.full(len(c), i) for i, c in enumerate(codes)]) if codes else code
    pos = np.concatenate([np.arange(len(c)) for c in codes]) if codes else code
    order = np.argsort(code, kind="stable")
    code, seq, pos = code[order], seq[order], pos[order]
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
    ends = np.r_[starts[1:], len(code)]
    hits = []
    for a, b in zip(starts, ends):
        if b - a < 2:
            continue
        u, v = np.triu_indices(b - a, 1)
        u, v = u + a, v + a
        keep = seq[u] != seq[v]
        u, v = u[keep], v[keep]
        hi, lo = np.maximum(seq[u], seq[v]), np.minimum(seq[u], seq[v])
        diag = np.where(seq[u] > seq[v], pos[u] - pos[v], pos[v] - pos[u])
        hits.append(np.stack([hi, lo, diag], axis=1))
    if not hits:
        return set()
    hits = np.concatenate(hits)
    found = set()
    for shift in (0, band // 2):  # two staggered band grids: hits near a band edge still meet
        keys = np.stack([hits[:, 0], hits[:, 1], (hits[:, 2] + shift) // band], axis=1)
        keys, counts = np.unique(keys, axis=0, return_counts=True)
        found.update(map(tuple, keys[counts >= min_hits, :2].tolist()))
    return found


def identity_clusters(sequences: Sequence[str], threshold: float, progress: bool = True) -> list[int]:
    """Cluster index per sequence (0, 1, ... in order of first appearance); see module doc."""
    from tqdm.auto import tqdm

    to_sequence, identity = _aligner()
    parsed = [to_sequence(s) for s in sequences]
    n = len(parsed)
    links = _UnionFind(n)
    if n > EXHAUSTIVE_LIMIT:
        pairs = sorted(candidate_pairs(sequences))
    else:
        pairs = [(i, j) for i in range(n) for j in range(i)]
    with tqdm(pairs, desc="sequence identity", unit="pair", disable=not progress or len(pairs) < 200) as bar:
        for i, j in bar:
            if links.find(i) != links.find(j) and identity(parsed[i], parsed[j]) >= threshold:
                links.union(i, j)
    labels: dict[int, int] = {}
    return [labels.setdefault(links.find(i), len(labels)) for i in range(n)]


def assign_splits(
    cluster_of: Sequence[int], fractions: dict[str, float], seed: int
) -> tuple[dict[int, str], list[str]]:
    """Split name per cluster, and warnings (e.g. a split left empty for lack of clusters)."""
    sizes: dict[int, int] = {}
    for c in cluster_of:
        sizes[c] = sizes.get(c, 0) + 1
    total = len(cluster_of)
    eligible = [name for name, f in fractions.items() if f > 0]
    targets = {name: fractions[name] * total for name in eligible}
    counts = dict.fromkeys(fractions, 0)
    rng = random.Random(seed)
    order = sorted(sizes, key=lambda c: (-sizes[c], rng.random()))
    split_of = {}
    for cluster in order:
        # The split furthest below its target, relative to the target (ties: listed order).
        name = max(eligible, key=lambda s: (targets[s] - counts[s]) / targets[s])
        split_of[cluster] = name
        counts[name] += sizes[cluster]
    notes = [
        f"split '{name}' is empty: only {len(sizes)} sequence clusters for {total} chains"
        for name in eligible
        if counts[name] == 0
    ]
    return split_of, notes
