"""The comparison plot: LR schedules and validation/test accuracy curves, one per method."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_comparison(results: list[dict], path, title: str = "") -> Path:
    """Plots the LR schedules and the validation/test accuracy curves of `results` to a PNG.

    One curve per method (the first seed of each method).

    Raises:
        ImportError: when matplotlib is not installed (`pip install 'keras_lode[plot]'`).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("Plots need matplotlib: pip install 'keras_lode[plot]'") from e
    first: dict[str, dict] = {}
    for r in sorted(results, key=lambda r: r["seed"]):
        first.setdefault(r["method"], r)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for m, r in first.items():
        spe = r["steps_per_epoch"]
        steps = np.asarray(r["points"]["step"], dtype=float) / spe
        axes[0].plot(steps, r["points"]["lr"], label=m)
        ep = [e["epoch"] for e in r["epochs"]]
        axes[1].plot(ep, [100 * e["val_metric"] for e in r["epochs"]], marker="o", label=m)
        axes[2].plot(ep, [100 * e["test_metric"] for e in r["epochs"]], marker="o", label=m)
    axes[0].set(xlabel="epoch", ylabel="learning rate", yscale="log", title="LR schedule")
    axes[1].set(xlabel="epoch", ylabel="accuracy (%)", title="validation accuracy")
    axes[2].set(xlabel="epoch", ylabel="accuracy (%)", title="test accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
    for ax in axes:  # each panel says which curve is which
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
