"""Assemble MediaPipe's hand_landmarker.task from the official mediapipe==0.10.21 wheel (set-up only).

Releases from 0.10.30 on ship no model files; the 0.10.21 wheel (Apache-2.0) carries the palm
detector and landmark models, which zipped under the Tasks names form a working bundle (DESIGN §12).
"""
from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile
import zipfile

MEMBERS = {
    "mediapipe/modules/palm_detection/palm_detection_full.tflite": "hand_detector.tflite",
    "mediapipe/modules/hand_landmark/hand_landmark_full.tflite": "hand_landmarks_detector.tflite",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument("--wheel", type=pathlib.Path, help="use this wheel instead of downloading one")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "mediapipe==0.10.21",
                            "--no-deps", "--python-version", "3.11", "--only-binary=:all:",
                            "-d", tmp], check=True)
            wheel = next(pathlib.Path(tmp).glob("mediapipe-0.10.21-*.whl"))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        part = args.out.with_suffix(".part")
        with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(part, "w", zipfile.ZIP_STORED) as dst:
            for member, name in MEMBERS.items():
                dst.writestr(name, src.read(member))
        part.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
