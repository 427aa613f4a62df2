"""Hand detection with MediaPipe Tasks `HandLandmarker` (bundle assembled at set-up, DESIGN §12).

`HandDetector().detect(rgb)` returns every hand found as a `Detection`: 21 keypoints in pixels
(MediaPipe order), per-keypoint scores, a per-hand score, the true handedness ('left' | 'right'),
a square crop box around the keypoints, and MediaPipe's own 3D world landmarks (metres, used only
as an evaluation baseline). No hand found raises `core.errors.NoHandError`.

The models are right hands (DESIGN §3): `to_model_frame` mirrors a left hand's keypoints across the
vertical line x = 0 of the camera (u' = W - 1 - u with the principal point moved accordingly), and
`core.joints.mirror_x` / `mirror_K` bring results back. Mirroring the camera frame (x → -x) maps a left
hand onto a right hand and keeps projection consistent when K is mirrored too.
"""
from __future__ import annotations

import atexit
import pathlib
import threading
import weakref
from dataclasses import dataclass, field

import numpy as np

from core.errors import InputError, NoHandError, WeightsError
from core.paths import mediapipe_task_path

#: Default padding of the crop box around the keypoint bounding box (fraction of its longer side).
CROP_PAD = 0.25


@dataclass
class Detection:
    """One detected hand (pixel coordinates of the image it was found in)."""

    keypoints2d: np.ndarray            # (21,2) float64, pixels
    scores: np.ndarray                 # (21,) per-keypoint score in [0,1]
    score: float                       # per-hand score (handedness confidence x presence)
    handedness: str                    # 'left' | 'right' (true handedness)
    box: np.ndarray                    # (4,) x0, y0, x1, y1 square crop box, pixels
    world_landmarks: np.ndarray | None = None   # (21,3) metres, MediaPipe's 3D (baseline only)
    image_size: tuple[int, int] = (0, 0)        # (width, height)
    extra: dict = field(default_factory=dict)
    keypoints_z: np.ndarray | None = None       # (21,) MediaPipe's relative depth of the 2D keypoints, px
                                                # (wrist ≈ 0, smaller = nearer); evidence for the side (core.side)

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return float((x1 - x0) * (y1 - y0))


def crop_box(keypoints2d: np.ndarray, pad: float = CROP_PAD) -> np.ndarray:
    """Square box (x0,y0,x1,y1) centred on the keypoints' bounding box, side = longer side × (1 + 2·pad).

    The same function defines the crop normalisation at training and at inference.
    """
    kp = np.asarray(keypoints2d, np.float64)
    lo, hi = kp.min(-2), kp.max(-2)
    c = (lo + hi) / 2
    half = (hi - lo).max(-1) / 2 * (1 + 2 * pad)
    half = np.maximum(half, 1e-6)
    return np.concatenate([c - half[..., None], c + half[..., None]], -1)


def mirror_keypoints(kp2d: np.ndarray, width: int) -> np.ndarray:
    """Mirror pixel keypoints horizontally in an image of `width` pixels (u → W - u)."""
    out = np.array(kp2d, np.float64, copy=True)
    out[..., 0] = width - out[..., 0]
    return out


def mirror_K(K: np.ndarray, width: int) -> np.ndarray:
    """Intrinsics of the horizontally mirrored image (cx → W - cx); pairs with `mirror_keypoints`."""
    out = np.array(K, np.float64, copy=True)
    out[0, 2] = width - out[0, 2]
    return out


def to_model_frame(det: Detection, K: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(keypoints2d, K, mirrored) as the right-hand models see them: a left hand is mirrored."""
    w = det.image_size[0]
    if det.handedness == "left":
        return mirror_keypoints(det.keypoints2d, w), mirror_K(K, w), True
    return np.asarray(det.keypoints2d, np.float64), np.asarray(K, np.float64), False


#: Detectors not closed yet; the exit hook closes them while MediaPipe's C library is still loaded.
_OPEN: "weakref.WeakSet[HandDetector]" = weakref.WeakSet()


@atexit.register
def _close_open_detectors() -> None:
    for det in list(_OPEN):
        det.close()


class HandDetector:
    """Thin wrapper around MediaPipe's Tasks HandLandmarker (IMAGE mode, thread-safe via a lock)."""

    def __init__(self, task_path: str | pathlib.Path | None = None, max_hands: int = 4,
                 min_detection_confidence: float = 0.3, min_presence_confidence: float = 0.3) -> None:
        path = pathlib.Path(task_path) if task_path else mediapipe_task_path()
        if not path.exists():
            raise WeightsError(f"{path}: MediaPipe hand_landmarker.task is missing; build it with: "
                               f"python scripts/build_mediapipe_task.py --out {path}")
        try:
            from mediapipe.tasks.python import BaseOptions, vision
        except Exception as exc:  # pragma: no cover - install problem
            raise WeightsError(f"mediapipe cannot be imported ({exc}); run scripts/setup.sh") from exc
        opts = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.IMAGE,
            num_hands=max_hands,
            min_hand_detection_confidence=min_detection_confidence,
            min_hand_presence_confidence=min_presence_confidence,
        )
        from core.quiet import native_stderr_silenced

        try:
            with native_stderr_silenced():
                self._landmarker = vision.HandLandmarker.create_from_options(opts)
        except Exception as exc:
            raise WeightsError(f"{path}: cannot load the MediaPipe bundle ({exc}); rebuild it with: "
                               f"python scripts/build_mediapipe_task.py --out {path}") from exc
        self._lock = threading.Lock()
        _OPEN.add(self)

    def close(self) -> None:
        """Idempotent. Detectors still open at interpreter exit are closed by an exit hook: left to
        MediaPipe's own __del__, the close can run after its C library is torn down and print a traceback."""
        self._landmarker.close()
        _OPEN.discard(self)

    def __enter__(self) -> "HandDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """All hands in an RGB uint8 image (H,W,3), largest first. Raises NoHandError when none."""
        import mediapipe as mp

        img = np.asarray(rgb)
        if img.ndim != 3 or img.shape[2] != 3:
            raise InputError(f"expected an RGB image (H,W,3), got shape {img.shape}")
        if img.dtype != np.uint8:
            raise InputError(f"expected a uint8 image, got {img.dtype}")
        h, w = img.shape[:2]
        from core.quiet import native_stderr_silenced

        with self._lock, native_stderr_silenced():
            res = self._landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB,
                                                   data=np.ascontiguousarray(img)))
        out: list[Detection] = []
        for i, lms in enumerate(res.hand_landmarks):
            kp = np.array([[p.x * w, p.y * h] for p in lms], np.float64)
            kp_z = np.array([p.z * w for p in lms], np.float64)   # MediaPipe scales z like x
            vis = np.array([_score(p) for p in lms], np.float64)
            cat = res.handedness[i][0] if res.handedness and res.handedness[i] else None
            side = (cat.category_name or "Right").lower() if cat is not None else "right"
            hand_score = float(cat.score) if cat is not None else 1.0
            world = None
            if res.hand_world_landmarks and i < len(res.hand_world_landmarks):
                world = np.array([[p.x, p.y, p.z] for p in res.hand_world_landmarks[i]], np.float64)
            out.append(Detection(keypoints2d=kp, scores=vis, score=hand_score,
                                 handedness="left" if side.startswith("l") else "right",
                                 box=crop_box(kp), world_landmarks=world, image_size=(w, h), keypoints_z=kp_z))
        if not out:
            raise NoHandError("no hand detected in the image")
        out.sort(key=lambda d: -d.area)
        return out


def _score(p) -> float:
    """Per-keypoint score: MediaPipe fills visibility/presence only in some builds; default 1."""
    vals = [v for v in (getattr(p, "visibility", None), getattr(p, "presence", None)) if v is not None]
    vals = [float(v) for v in vals if float(v) > 0]
    return float(np.clip(min(vals), 0, 1)) if vals else 1.0


def select_hands(dets: list[Detection], which: str = "largest") -> list[Detection]:
    """'largest' → the biggest hand; 'left' / 'right' → the biggest of that side; 'all' → all."""
    if which == "all":
        return list(dets)
    if which == "largest":
        return dets[:1]
    if which in ("left", "right"):
        side = [d for d in dets if d.handedness == which]
        if not side:
            raise NoHandError(f"no {which} hand detected (found: {', '.join(d.handedness for d in dets)})")
        return side[:1]
    raise ValueError(f"unknown hand selection {which!r} (largest, left, right, all)")


_DEFAULT: HandDetector | None = None


def default_detector() -> HandDetector:
    """Process-wide detector (built once; ~0.1 s)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = HandDetector()
    return _DEFAULT
