"""Protein records -> model examples -> padded batches.

* Sequences are read one letter per residue into indices of
  :data:`loralab.protein.model.RESIDUE_ALPHABET` (20 standard residues + X). Letters
  outside it: U (selenocysteine) is read as C and O (pyrrolysine) as K, their parents;
  the ambiguity codes B, Z, J become X; a trailing '*' (stop) is dropped; each with a
  warning. Anything else (digits, '-', '.') is an error naming the sequence and position.
* Chains longer than ``protein.max_length`` are cropped to one window of that length:
  a random window each time the example is drawn for training (``protein.crop:
  random``; Python's ``random``, whose state the trainer checkpoints), the first window
  otherwise. The crop is logged once per data set with the number of chains affected.
* A batch is right-padded to its longest chain. ``pair_mask`` is True for pairs of
  observed residues (coordinates present) with i != j; everything else (padding,
  missing residues, the diagonal) is left out of the loss and the metrics.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loralab.errors import DataError
from loralab.protein.model import RESIDUE_ALPHABET, UNKNOWN_RESIDUE

log = logging.getLogger("loralab.protein")

MIN_OBSERVED = 4  # fewer observed residues give no 3D structure to score against
RESIDUE_INDEX = {letter: i for i, letter in enumerate(RESIDUE_ALPHABET)}
PARENT_LETTER = {"U": "C", "O": "K"}
AMBIGUOUS_LETTERS = {"B", "Z", "J"}


def encode_sequence(sequence: str, where: str = "sequence") -> tuple[np.ndarray, list[str]]:
    """(residue indices int64 [L], warnings) of a one-letter sequence; errors name ``where``."""
    seq = "".join(sequence.split()).upper()
    notes = []
    if seq.endswith("*"):
        seq = seq.rstrip("*")
        notes.append(f"{where}: trailing '*' (stop) dropped")
    if not seq:
        raise DataError(f"{where}: empty sequence; give at least two residues in one-letter code")
    bad = [(i + 1, c) for i, c in enumerate(seq) if c not in RESIDUE_INDEX and c not in PARENT_LETTER]
    bad = [(i, c) for i, c in bad if c not in AMBIGUOUS_LETTERS]
    if bad:
        shown = ", ".join(f"'{c}' at {i}" for i, c in bad[:5])
        raise DataError(
            f"{where}: {len(bad)} character(s) that are not residue letters ({shown}). Use the 20 standard "
            "one-letter codes; X for an unknown residue (U, O, B, Z, J are read with a warning)."
        )
    for letter, parent in PARENT_LETTER.items():
        if letter in seq:
            notes.append(f"{where}: {seq.count(letter)} '{letter}' read as its parent residue '{parent}'")
            seq = seq.replace(letter, parent)
    ambiguous = sum(seq.count(c) for c in AMBIGUOUS_LETTERS)
    if ambiguous:
        notes.append(f"{where}: {ambiguous} ambiguous letter(s) (B/Z/J) read as X (unknown residue)")
        for c in AMBIGUOUS_LETTERS:
            seq = seq.replace(c, "X")
    unknown = seq.count("X")
    if unknown * 2 >= len(seq):  # the model then sees little but the chain's length
        notes.append(
            f"{where}: {unknown} of {len(seq)} residues are X (unknown): the prediction rests on the "
            "chain's length, not its sequence"
        )
    return np.array([RESIDUE_INDEX[c] for c in seq], dtype=np.int64), notes


def decode_residues(residue_index: np.ndarray) -> str:
    return "".join(RESIDUE_ALPHABET[i] for i in residue_index)


@dataclass
class ProteinExample:
    """One chain, ready for the model. coords: float32 [L, 3] (NaN where missing)."""

    id: str
    residue_index: np.ndarray
    coords: np.ndarray
    mask: np.ndarray

    @property
    def length(self) -> int:
        return len(self.residue_index)


def example_from_record(record) -> ProteinExample:
    """A ProteinRecord of :func:`loralab.protein.records.read_dataset` -> ProteinExample."""
    residues, notes = encode_sequence(record.sequence, where=f"protein {record.id}")
    for note in notes:
        log.warning(note)
    coords = np.asarray(record.coords, dtype=np.float32).reshape(-1, 3)
    mask = np.asarray(record.mask, dtype=bool) & np.isfinite(coords).all(axis=1)
    if len(coords) != len(residues):
        raise DataError(
            f"protein {record.id}: sequence has {len(residues)} residues but coordinates have {len(coords)}; "
            "re-run 'loralab protein prepare'"
        )
    return ProteinExample(record.id, residues, coords, mask)


def crop_window(length: int, max_length: int, mode: str) -> tuple[int, int]:
    """[start, end) of the window used for a chain of ``length`` residues."""
    if length <= max_length:
        return 0, length
    start = random.randint(0, length - max_length) if mode == "random" else 0
    return start, start + max_length


class ProteinDataset(Sequence):
    """Examples with cropping to ``max_length`` (random or first window, see module doc)."""

    def __init__(self, examples: list[ProteinExample], max_length: int, crop: str, name: str = "data"):
        self.examples = examples
        self.max_length = max_length
        self.crop = crop
        long = [e for e in examples if e.length > max_length]
        if long:
            how = "a random window each time it is drawn" if crop == "random" else "its first residues"
            log.warning(
                "%s: %d of %d chains are longer than protein.max_length=%d and are cropped to %s "
                "(longest: %s, %d residues)",
                name,
                len(long),
                len(examples),
                max_length,
                how,
                max(long, key=lambda e: e.length).id,
                max(e.length for e in long),
            )

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i):
        ex = self.examples[i]
        start, end = crop_window(ex.length, self.max_length, self.crop)
        return ProteinExample(ex.id, ex.residue_index[start:end], ex.coords[start:end], ex.mask[start:end])

    @property
    def lengths(self) -> list[int]:
        return [min(e.length, self.max_length) for e in self.examples]


def usable_examples(records, split: str) -> list[ProteinExample]:
    """Examples of ``records``; chains with fewer than :data:`MIN_OBSERVED` observed residues
    are skipped, with a warning naming them."""
    examples, skipped = [], []
    for r in records:
        ex = example_from_record(r)
        (examples if ex.mask.sum() >= MIN_OBSERVED else skipped).append(ex)
    if skipped:
        log.warning(
            "%s: skipped %d chain(s) with fewer than %d observed residues: %s",
            split,
            len(skipped),
            MIN_OBSERVED,
            ", ".join(e.id for e in skipped[:10]),
        )
    return examples


def pairwise_distances(coords: np.ndarray) -> np.ndarray:
    """[L, L] Euclidean distances (NaN rows/columns where coordinates are missing)."""
    diff = coords[:, None, :] - coords[None, :, :]
    return np.sqrt((diff.astype(np.float64) ** 2).sum(-1)).astype(np.float32)


def collate_proteins(examples: list[ProteinExample]) -> dict:
    """Right-padded batch: residue_index [B, L], residue_mask [B, L], distances [B, L, L] (A,
    0 where invalid), pair_mask [B, L, L], lengths [B], ids, num_tokens (valid pairs i < j)."""
    import torch

    batch_size = len(examples)
    width = max(e.length for e in examples)
    residue_index = np.full((batch_size, width), UNKNOWN_RESIDUE, dtype=np.int64)
    residue_mask = np.zeros((batch_size, width), dtype=bool)
    distances = np.zeros((batch_size, width, width), dtype=np.float32)
    for b, e in enumerate(examples):
        n = e.length
        residue_index[b, :n] = e.residue_index
        residue_mask[b, :n] = e.mask
        d = pairwise_distances(np.where(e.mask[:, None], e.coords, 0.0))
        distances[b, :n, :n] = d
    pair_mask = residue_mask[:, :, None] & residue_mask[:, None, :]
    pair_mask &= ~np.eye(width, dtype=bool)[None]
    distances[~pair_mask] = 0.0
    return {
        "residue_index": torch.from_numpy(residue_index),
        "residue_mask": torch.from_numpy(residue_mask),
        "distances": torch.from_numpy(distances),
        "pair_mask": torch.from_numpy(pair_mask),
        "lengths": torch.tensor([e.length for e in examples]),
        "ids": [e.id for e in examples],
        "num_tokens": int(pair_mask.sum()) // 2,
    }
