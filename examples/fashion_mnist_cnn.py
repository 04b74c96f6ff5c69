"""Fashion-MNIST with a small CNN, trained with the LODE schedule or a baseline.

Runs on any Keras backend (set KERAS_BACKEND=tensorflow|jax|torch).

    python examples/fashion_mnist_cnn.py --schedule lode            # the shipped LODE in models/
    python examples/fashion_mnist_cnn.py --schedule wsd --peak-lr 6e-3      # the best baseline
    python examples/fashion_mnist_cnn.py --quick --schedule cosine  # seconds-long smoke run
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

TASK = "fmnist_cnn"


def main(argv=None) -> int:
    # WSD at 0.006 is the best baseline of the sweep behind models/fmnist_cnn.npz.
    p = _common.parser(
        __doc__.splitlines()[0], "models/fmnist_cnn.npz", warmup="wsd", peak_lr=0.006
    )
    args = p.parse_args(argv)
    _common.run(TASK, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
