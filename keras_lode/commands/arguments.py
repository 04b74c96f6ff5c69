"""Argument parsing shared by several subcommands."""

from __future__ import annotations


def parse_seeds(text: str) -> list[int]:
    """Parses `"1,2,3"` into `[1, 2, 3]` (raises ValueError naming the argument)."""
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError as e:
        raise ValueError(
            f"Argument `--seeds` must be comma-separated integers. Received: {text!r}"
        ) from e
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"Argument `--seeds` must list distinct integers. Received: {text!r}")
    return seeds
