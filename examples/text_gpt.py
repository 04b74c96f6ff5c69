"""Byte-level next-token prediction with a KerasHub GPT model: LODE or a baseline.

Runs on any Keras backend (set KERAS_BACKEND=tensorflow|jax|torch).

    python examples/text_gpt.py --schedule lode            # the shipped LODE in models/
    python examples/text_gpt.py --schedule onecycle --peak-lr 3e-3
    python examples/text_gpt.py --quick --schedule cosine  # seconds-long smoke run
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

TASK = "text_gpt"


def main(argv=None) -> int:
    # WSD at 0.008 is the best baseline of the sweep behind models/text_gpt.npz.
    p = _common.parser(__doc__.splitlines()[0], "models/text_gpt.npz", warmup="wsd", peak_lr=0.008)
    args = p.parse_args(argv)
    _common.run(TASK, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
