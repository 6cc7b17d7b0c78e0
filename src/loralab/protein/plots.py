"""Pictures of a protein prediction: distance-map heatmaps side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_heatmaps(path: Path, panels: list[tuple[str, np.ndarray]], vmax: float | None = None) -> Path:
    """Side-by-side distance heatmaps (A) sharing one colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vmax = vmax or max(float(np.nanmax(D)) for _, D in panels if D.size) or 1.0
    # A fixed layout (constrained_layout doubles the drawing time; evaluation draws many).
    width = 3.4 * len(panels) + 1.6  # inches; the last 1.1 hold the colour bar and its label
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 3.6), squeeze=False)
    fig.subplots_adjust(left=0.6 / width, right=1 - 1.3 / width, bottom=0.14, top=0.9, wspace=0.18)
    for k, (ax, (title, D)) in enumerate(zip(axes[0], panels)):
        im = ax.imshow(D, cmap="viridis_r", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("residue j")
        if k == 0:
            ax.set_ylabel("residue i")
    colorbar_axes = fig.add_axes((1 - 1.1 / width, 0.14, 0.18 / width, 0.76))
    fig.colorbar(im, cax=colorbar_axes, label="C-alpha distance (A)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
