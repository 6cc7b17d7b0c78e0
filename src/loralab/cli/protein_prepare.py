"""Turn PDB / mmCIF files into a protein distance-map data set.

Reads every structure file under --structures (folders searched recursively; .pdb, .ent,
.cif, .mmcif, .pdbx, optionally gzipped), keeps one record per protein chain (first model,
highest-occupancy alternate locations, modified residues by their parent), records gaps
and never closes them, filters by length and missing fraction, collapses duplicate
sequences, and splits train/val/test by sequence-identity clusters so that no pair of
chains in different splits reaches --identity-threshold. Writes manifest.jsonl,
coords/<id>.npy and summary.json (every file and chain left out, with the reason).

--promod3 also reads the ProMod3 StructureDB (21,119 real chains; Debian: apt-get install -y
python3-promod3): "auto" exports it now through Debian's /usr/bin/python3, or give an npz
exported before; the same filters, duplicate collapse and clustered split apply.

Examples:
  loralab protein prepare --structures pdb_files/ --out data/proteins
  loralab protein prepare --promod3 auto --promod3-limit 2000 --max-length 256 --out data/promod3
"""

from __future__ import annotations

import argparse
import json

from loralab.cli.common import fraction, positive_int

HELP = "structures (PDB/mmCIF) -> manifest, coordinates and identity-clustered splits"


def _fractions(text: str) -> dict[str, float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.8,0.1,0.1, got {text!r}") from e
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected train,val,test fractions like 0.8,0.1,0.1, got {text!r}")
    return dict(zip(("train", "val", "test"), values))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--structures", nargs="+", default=None, metavar="PATH", help="structure files or folders"
    )
    parser.add_argument(
        "--promod3",
        metavar="auto|FILE.npz",
        default=None,
        help="also read the ProMod3 StructureDB: 'auto' (export via /usr/bin/python3) or an export file",
    )
    parser.add_argument(
        "--promod3-limit",
        type=int,
        default=None,
        metavar="N",
        help="with --promod3 auto: N chains within the length filter, spread over the database",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder of the data set")
    parser.add_argument(
        "--min-length", type=positive_int, default=30, help="shortest chain kept (residues, default 30)"
    )
    parser.add_argument(
        "--max-length", type=positive_int, default=1000, help="longest chain kept (default 1000)"
    )
    parser.add_argument(
        "--max-missing-fraction",
        type=float,
        default=0.25,
        help="largest fraction of residues without a C-alpha (gaps, termini; default 0.25)",
    )
    parser.add_argument(
        "--max-unknown-fraction",
        type=float,
        default=0.1,
        help="largest fraction of residues of unknown type (X) in a kept chain (default 0.1)",
    )
    parser.add_argument(
        "--identity-threshold",
        type=fraction,
        default=0.3,
        help="sequence identity, as a fraction in (0, 1], at which two chains must share a split "
        "(default 0.3: 30%%)",
    )
    parser.add_argument(
        "--split",
        type=_fractions,
        default=_fractions("0.8,0.1,0.1"),
        metavar="TRAIN,VAL,TEST",
        help="fractions of chains per split (default 0.8,0.1,0.1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")


def run(args: argparse.Namespace) -> int:
    from loralab.protein.prepare import prepare_structures
    from loralab.safe_files import ensure_output_dir

    ensure_output_dir(args.out, "--out")
    structures = args.structures
    if structures is None and args.promod3 is None:
        print("error: give --structures PATH..., --promod3 auto|FILE.npz, or both")
        return 2
    out = prepare_structures(
        structures[0] if structures and len(structures) == 1 else structures,
        args.out,
        min_length=args.min_length,
        max_length=args.max_length,
        max_missing_fraction=args.max_missing_fraction,
        max_unknown_fraction=args.max_unknown_fraction,
        identity_threshold=args.identity_threshold,
        split_fractions=args.split,
        seed=args.seed,
        promod3=args.promod3,
        promod3_limit=args.promod3_limit,
    )
    summary = json.loads((out / "summary.json").read_text())
    files = summary["files"]
    print(
        f"{files['structure_files']} structure files ({len(files['failed'])} unreadable or without protein), "
        f"{summary['chains']['kept']} chains kept, {summary['chains']['left_out']} left out"
    )
    reasons: dict[str, int] = {}
    for item in summary["skipped"]:
        reasons[item["kind"]] = reasons.get(item["kind"], 0) + 1
    if reasons:
        print("  left out: " + ", ".join(f"{k} x{v}" for k, v in sorted(reasons.items())))
    for name, split in summary["splits"].items():
        print(
            f"  {name:5s}: {split['chains']:5d} chains, {split['clusters']:5d} clusters, {split['residues']:7d} residues"
        )
    d = summary["distances"]
    pairs, neighbours = d["all_pairs"], d["sequential_neighbours"]
    if pairs["n"]:
        print(
            f"  C-alpha distances: mean {pairs['mean']:.2f} A, std {pairs['std']:.2f}, "
            f"range {pairs['min']:.2f}-{pairs['max']:.2f}; sequential neighbours {neighbours.get('mean', 0):.2f} A"
        )
    for warning in summary["warnings"][:10]:
        print(f"  warning: {warning}")
    print(f"wrote {out}/manifest.jsonl, {out}/coords/, {out}/summary.json")
    return 0
