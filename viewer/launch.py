"""`pose-viewer` entry point: sub-commands go to the headless CLI, anything else opens the window."""
from __future__ import annotations

import argparse
import os
import sys

from core import __version__
from core.cli import COMMANDS
from core.prior.choices import PRIORS, SCHEDULES

VIEWS = ("front", "side", "top", "camera")   # --view: the View menu's views (viewer.actions)


def gui_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pose-viewer",
        description="Probabilistic 3D hand pose viewer. Without a COMMAND, opens the window "
                    f"(optionally on FILE). Headless commands: {', '.join(COMMANDS)} "
                    "(`pose-viewer COMMAND --help`).")
    p.add_argument("--version", action="version", version=f"pose-viewer {__version__}")
    p.add_argument("file", nargs="?", help="an image or a pose file (.npz / .json) to open")
    p.add_argument("--screenshot", metavar="PNG", help="save a screenshot after loading (and completing) and quit")
    p.add_argument("--view", choices=VIEWS, default=None,
                   help="the 3D view for a photo: front (the selected hand framed) or camera (every hand over "
                        "the photo, through its camera)")
    g = p.add_argument_group("DPoser completion of a pose file (scripted use)")
    g.add_argument("--mask", help="hidden joints, e.g. 4,8,12,16,20")
    g.add_argument("--mask-preset", help="fingertips | finger:thumb..pinky | random:0.6")
    g.add_argument("--complete", action="store_true", help="complete the hidden joints with DPoser")
    g.add_argument("--prior", choices=PRIORS, default=PRIORS[0])
    g.add_argument("--schedule", choices=SCHEDULES, default=SCHEDULES[0])
    g.add_argument("--t-max", type=float, default=None)
    g.add_argument("--t-min", type=float, default=None)
    g.add_argument("-n", type=int, default=None, help="number of completions")
    p.add_argument("--mano-dir", help="folder holding MANO_RIGHT.pkl (optional MANO hand model)")
    p.add_argument("--debug", action="store_true", help="print tracebacks")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        from core.cli import main as cli_main

        return cli_main(argv)
    args = gui_parser().parse_args(argv)
    from viewer.app import run_app

    return run_app(args)


if __name__ == "__main__":
    raise SystemExit(main())
