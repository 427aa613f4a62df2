"""Headless command-line interface: `pose-viewer mesh|infer|complete ...` (no Qt imported here).

The GUI entry (`viewer.launch`) hands any sub-command to `main` here. Errors on an input print one
`error: <path>: <reason>` line, the other inputs still run, and the exit status is 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from core import __version__
from core.errors import HandModelError, PoseViewerError, one_line

#: Sub-command modules under core/commands (each has `register(subparsers)`).
COMMANDS = ("mesh", "infer", "complete")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pose-viewer", description="Probabilistic 3D hand pose: headless commands.")
    parser.add_argument("--version", action="version", version=f"pose-viewer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"core.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"core.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def add_common_options(p: argparse.ArgumentParser) -> None:
    """Options every sub-command shares."""
    p.add_argument("--debug", action="store_true", help="print tracebacks on errors")


def run_each(paths: Iterable[str], handle: Callable[[str], Any], debug: bool = False) -> int:
    """Run `handle(path)` for every input; one `error:` line per failure; exit status 0 or 2."""
    failed = 0
    for path in paths:
        try:
            handle(path)
        except (PoseViewerError, HandModelError, OSError, ValueError) as exc:
            failed += 1
            if debug:
                traceback.print_exc()
            print(f"error: {path}: {one_line(exc)}", file=sys.stderr)
        except Exception as exc:  # an engine bug: still one line, traceback with --debug
            failed += 1
            if debug:
                traceback.print_exc()
            print(f"error: {path}: internal error ({type(exc).__name__}: {one_line(exc)}); rerun with --debug",
                  file=sys.stderr)
    return 2 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "debug", False):
        import os

        os.environ["POSE_VIEWER_DEBUG"] = "1"   # keep native libraries' messages too
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except PoseViewerError as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
