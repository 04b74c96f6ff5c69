"""Fashion-MNIST (or CIFAR-10/100) with a narrow ResNet-18-style network, LODE or a baseline.

Runs on any Keras backend (set KERAS_BACKEND=tensorflow|jax|torch). CIFAR comes from
`keras.datasets` (its cache or a download), so `--dataset cifar10` needs one of them.

    python examples/fashion_mnist_resnet.py --schedule lode
    python examples/fashion_mnist_resnet.py --schedule cosine --peak-lr 3e-3
    python examples/fashion_mnist_resnet.py --dataset cifar10 --schedule onecycle
    python examples/fashion_mnist_resnet.py --quick --schedule step
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

TASKS = {"fmnist": "fmnist_resnet", "cifar10": "cifar10_resnet", "cifar100": "cifar100_resnet"}


def main(argv=None) -> int:
    p = _common.parser(__doc__.splitlines()[0], "models/fmnist_resnet.npz")
    p.add_argument("--dataset", choices=sorted(TASKS), default="fmnist")
    args = p.parse_args(argv)
    _common.run(TASKS[args.dataset], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
