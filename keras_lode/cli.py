"""The `keras-lode` command line: sweep, train, plan, compare, demo.

Each subcommand lives in `keras_lode.commands.<name>` and exposes `HELP`,
`add_arguments(parser)` and `run(args) -> int`. Those modules import nothing heavy
at module level, so `keras-lode --help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("sweep", "train", "calibrate", "plan", "compare", "demo")


def build_parser() -> argparse.ArgumentParser:
    from keras_lode import __version__

    parser = argparse.ArgumentParser(
        prog="keras-lode",
        description="Turn a hyperparameter sweep into a learning-rate scheduler (latent ODE).",
    )
    parser.add_argument("--version", action="version", version=f"keras-lode {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = importlib.import_module(f"keras_lode.commands.{name}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        rc = int(args._run(args) or 0)
        sys.stdout.flush()  # a closed pipe raises here, not at exit
        return rc
    except BrokenPipeError:  # `keras-lode plan ... | head`: the reader left; so do we, quietly
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
        return 141  # 128 + SIGPIPE, as a shell reports a command that the pipe ended


if __name__ == "__main__":
    sys.exit(main())
