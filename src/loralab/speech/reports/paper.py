"""The published numbers our tables are compared with.

Ahn & Nam, "English Pronunciation Evaluation without Complex Joint Training: LoRA
Fine-tuned Speech Multimodal LLM" (arXiv 2509.02915, 2025): Table 3 (SpeechOcean762 test
set, per strategy and epoch), Table 4 (other systems, sentence-level PCC) and Figure 5.
"""

from __future__ import annotations

# Column keys shared by our metrics rows and the paper's rows.
TABLE3_COLUMNS = ("acc_pcc", "flu_pcc", "pros_pcc", "total_pcc", "wer", "per", "f1", "precision", "recall")
TABLE3_HEADERS = {
    "acc_pcc": "Acc PCC",
    "flu_pcc": "Flu PCC",
    "pros_pcc": "Pros PCC",
    "total_pcc": "Total PCC",
    "wer": "WER",
    "per": "PER",
    "f1": "F1",
    "precision": "Prec",
    "recall": "Rec",
}

_T3 = {
    ("none", 0): (-0.041, -0.017, -0.049, -0.104, 0.97, 0.792, 0.143, 0.154, 0.134),
    ("lora", 1): (0.547, 0.585, 0.567, 0.544, 0.150, 0.137, 0.686, 0.689, 0.682),
    ("lora", 2): (0.637, 0.726, 0.709, 0.662, 0.139, 0.118, 0.722, 0.725, 0.719),
    ("lora", 3): (0.656, 0.727, 0.711, 0.675, 0.140, 0.114, 0.724, 0.728, 0.721),
    ("lora", 4): (0.645, 0.733, 0.714, 0.668, 0.148, 0.121, 0.721, 0.723, 0.720),
    ("unfreeze", 1): (0.535, 0.559, 0.564, 0.550, 0.159, 0.199, 0.575, 0.579, 0.570),
    ("unfreeze", 2): (0.624, 0.668, 0.653, 0.634, 0.145, 0.154, 0.651, 0.651, 0.651),
    ("unfreeze", 3): (0.621, 0.669, 0.655, 0.637, 0.148, 0.150, 0.663, 0.665, 0.662),
    ("unfreeze", 4): (0.743, 0.717, 0.704, 0.666, 0.142, 0.142, 0.667, 0.671, 0.663),
}
PAPER_TABLE3: dict[tuple[str, int], dict[str, float]] = {
    key: dict(zip(TABLE3_COLUMNS, values)) for key, values in _T3.items()
}

TABLE4_COLUMNS = ("acc_pcc", "flu_pcc", "pros_pcc", "total_pcc", "per")
# None: not reported by that system.
PAPER_TABLE4: list[tuple[str, tuple[float | None, ...]]] = [
    ("GOPT (Gong et al. 2022)", (0.714, 0.753, 0.760, 0.742, None)),
    ("Data2vec2 MLLM (Fu et al. 2024)", (0.713, 0.777, None, None, None)),
    ("Joint-CAPT-L1 (Ryu et al. 2023)", (0.719, 0.775, 0.773, 0.743, 0.099)),
    ("Azure Pronunciation Assessment", (0.700, 0.715, 0.842, 0.782, None)),
    ("Paper: LoRA, epoch 3 (Ahn & Nam 2025)", (0.656, 0.727, 0.711, 0.675, 0.114)),
    ("Paper: Unfreeze, epoch 4 (Ahn & Nam 2025)", (0.743, 0.717, 0.704, 0.666, 0.142)),
]

# Figure 5: Pearson r between per-utterance PER and the accuracy score.
PAPER_FIGURE5 = {"human": -0.4463, "predicted": -0.3543}


def paper_row(strategy: str, epoch: int) -> dict[str, float] | None:
    """The paper's Table 3 row for our strategy ('lora' / 'unfreeze') and epoch; epoch 0 is
    the shared 'no training' row. None when the paper has no such row (e.g. epoch 7)."""
    if epoch == 0:
        return PAPER_TABLE3[("none", 0)]
    return PAPER_TABLE3.get((strategy, epoch))
