"""Write resources/mesh/anny_neutral.npz: the Anny hand's neutral pose facing the camera (vertices,
joints, faces), so the window can draw its first hand without torch or the hand model (issue 27).

    ANNY_CACHE_DIR=.cache/anny .venv/bin/python scripts/make_neutral_hand.py

Re-run it when the Anny version or `core.hand.base.FACING_CAMERA_ORIENT` changes;
tests/test_faults.py checks that the shipped file matches the hand model.
"""
from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    import numpy as np

    from core.io.atomic import write_npz
    from core.neutral_hand import NEUTRAL_HAND, neutral_arrays

    write_npz(NEUTRAL_HAND, neutral_arrays())
    z = np.load(NEUTRAL_HAND)
    print(f"wrote {NEUTRAL_HAND.relative_to(ROOT)} ({NEUTRAL_HAND.stat().st_size / 1024:.0f} KB): "
          + ", ".join(f"{k} {z[k].shape}" for k in z.files))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
