"""Export the ProMod3 StructureDB to one npz file (run by Debian's ``/usr/bin/python3``).

ProMod3 (``apt-get install -y python3-promod3``, which pulls ``promod3-data``) is built for
the system interpreter only, so :mod:`loralab.protein.promod3_source` runs this file there as a
subprocess: ``/usr/bin/python3 promod3_export.py OUT.npz [--limit N] [--min-length N]
[--max-length N]``: the chains whose length is in the window, or ``--limit`` of them spread
evenly over the database (it is ordered by PDB id). It needs only ProMod3 and numpy.

The export format (read by :func:`loralab.protein.promod3_source.read_promod3_npz`; a test
fixture writes the same keys):

* ``ids``: str [N], the PDB entry (e.g. ``12AS``); ``chains``: str [N], chain names;
* ``start_resnums``: int32 [N], the residue number of each chain's first residue;
* ``sequences``: str [N], one letter per residue;
* ``offsets``: int64 [N + 1], chain k's residues are rows ``offsets[k]:offsets[k + 1]`` of
* ``ca``: float32 [R, 3], C-alpha coordinates (A);
* ``dssp``: str [N], DSSP states per residue (same length as the sequence);
* ``format``: the string ``loralab-promod3-structuredb-v1``.
"""

from __future__ import annotations

import sys

import numpy as np

EXPORT_FORMAT = "loralab-promod3-structuredb-v1"


def select(sizes: list[int], limit: int | None, min_length: int, max_length: int) -> list[int]:
    """Indices of chains with min_length <= size <= max_length; ``limit`` of them evenly spread."""
    fitting = [k for k, n in enumerate(sizes) if min_length <= n <= max_length]
    if limit is None or limit >= len(fitting):
        return fitting
    picks = np.linspace(0, len(fitting) - 1, limit).round().astype(int)
    return [fitting[i] for i in sorted(set(picks.tolist()))]


def export(out_path: str, limit: int | None = None, min_length: int = 1, max_length: int = 10**9) -> int:
    from promod3 import loop

    db = loop.LoadStructureDB()
    sizes = [db.GetCoordInfo(k).size for k in range(db.GetNumCoords())]
    chosen = select(sizes, limit, min_length, max_length)
    ids, chains, starts, sequences, dssp, blocks, offsets = [], [], [], [], [], [], [0]
    for k in chosen:
        info = db.GetCoordInfo(k)
        frag = loop.FragmentInfo(k, 0, info.size)
        sequence = db.GetSequence(frag)
        backbone = db.GetBackboneList(frag, sequence)
        ca = np.array([list(backbone.GetCA(i)) for i in range(info.size)], dtype=np.float32)
        ids.append(info.id)
        chains.append(info.chain_name)
        starts.append(int(info.start_resnum))
        sequences.append(sequence)
        dssp.append(db.GetDSSPStates(frag))
        blocks.append(ca.reshape(-1, 3))
        offsets.append(offsets[-1] + info.size)
    np.savez_compressed(
        out_path,
        format=np.array(EXPORT_FORMAT),
        ids=np.array(ids),
        chains=np.array(chains),
        start_resnums=np.array(starts, dtype=np.int32),
        sequences=np.array(sequences),
        dssp=np.array(dssp),
        offsets=np.array(offsets, dtype=np.int64),
        ca=np.concatenate(blocks) if blocks else np.zeros((0, 3), np.float32),
    )
    return len(chosen)


def _option(argv: list[str], name: str, default):
    return int(argv[argv.index(name) + 1]) if name in argv else default


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(
            "usage: /usr/bin/python3 promod3_export.py OUT.npz [--limit N] [--min-length N] [--max-length N]",
            file=sys.stderr,
        )
        return 2
    try:
        count = export(
            argv[0],
            _option(argv, "--limit", None),
            _option(argv, "--min-length", 1),
            _option(argv, "--max-length", 10**9),
        )
    except ImportError as e:
        print(f"PROMOD3_MISSING: {e}", file=sys.stderr)
        return 3
    print(f"exported {count} chains to {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
