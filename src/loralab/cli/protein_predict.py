"""Predict C-alpha distance maps and 3D traces from sequences with a trained protein run.

For each sequence, writes into --out: NAME.distances.npy (Angstrom), NAME.distances.png
(heatmap), NAME.pdb (C-alpha trace by classical MDS + stress refinement) and one
predictions.json. A distance map cannot tell a structure from its mirror image: the hand
is chosen by C-alpha torsions (right-handed helices), and the choice is written into the
PDB REMARKs and predictions.json. Sequences longer than the run's protein.max_length are
cropped to their first max_length residues (said in the output) unless --no-crop.
Letters: the 20 standard amino acids and X; U/O are read as C/K and B/Z/J as X, with a
warning; anything else is an error.

Examples:
  loralab protein predict --model output/protein_small --sequence MKTAYIAKQR... --out pred/
  loralab protein predict --model output/protein_small/final_model --fasta seqs.fasta --out pred/
"""

from __future__ import annotations

import argparse

from loralab.cli.common import device_spec, positive_int

HELP = "predict distance maps, C-alpha coordinates and a PDB file from sequences"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, metavar="RUN|DIR", help="protein run dir, or its final_model/checkpoint dir"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sequence", help="one protein sequence in one-letter code")
    source.add_argument("--fasta", metavar="FILE", help="FASTA file with one or more sequences")
    parser.add_argument(
        "--name", default="prediction", help="file name stem for --sequence (default: prediction)"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--no-refine", action="store_true", help="classical MDS only, no stress refinement")
    parser.add_argument(
        "--no-crop", action="store_true", help="predict chains longer than protein.max_length whole"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=8, help="sequences per forward pass (default 8)"
    )
    parser.add_argument(
        "--device", type=device_spec, help="torch device, e.g. cpu or cuda:0 (default: cuda if available)"
    )


def run(args: argparse.Namespace) -> int:
    from loralab.protein.predict import predict_sequences, read_fasta
    from loralab.safe_files import ensure_output_dir

    ensure_output_dir(args.out, "--out")
    sequences = read_fasta(args.fasta) if args.fasta else [(args.name, args.sequence)]
    summaries = predict_sequences(
        args.model,
        sequences,
        args.out,
        refine=not args.no_refine,
        crop=not args.no_crop,
        batch_size=args.batch_size,
        device=args.device,
    )
    for s in summaries:
        for note in s["notes"]:
            print(f"warning: {note}")
        hand = s["handedness"]
        print(
            f"{s['name']}: {s['predicted_length']} residues"
            + (f" (of {s['length']}, cropped)" if s["cropped"] else "")
            + f", neighbour distance {s['mean_neighbour_distance_A']:.2f} A, MDS stress {s['mds_stress']:.3f}, "
            f"trace CA-CA {s['geometry']['mean_ca_ca']:.2f} A, {s['geometry']['clashes']} clashes (< 3.5 A), "
            f"hand by CA torsions (score {hand['score']:+.2f}, mirrored={hand['mirrored']}) -> "
            f"{args.out}/{s['files']['pdb']}"
        )
    print(f"wrote {len(summaries)} prediction(s) to {args.out} (predictions.json lists them)")
    return 0
