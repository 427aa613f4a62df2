"""A second hand finder: MediaPipe's hand-landmark model run on its own over crops (issue 26, DESIGN §12).

The palm detector misses hands a user can plainly see (large hands filling the frame, hands in odd
rotations, small hands in a scene), yet the landmark model of the same bundle recognises them when it
is shown a crop around them. `HandSearcher.search` slides a multi-scale grid of square crops over the
image (the largest bigger than the image, for close-ups of a hand cut by the frame), shows each crop to
the landmark model in 4 rotations (0/90/180/270°), keeps the crops whose
hand-presence output passes `seed_threshold`, re-crops around the predicted keypoints the way MediaPipe
tracks a hand (rotation from wrist to middle-finger MCP, side = 2 × keypoint extent) until it settles,
keeps hands whose refined presence passes `threshold` and merges duplicates by non-maximum suppression.
`landmarks_in_box` does the same for one user-drawn box (best of the 4 rotations by presence).

The model (`hand_landmarks_detector.tflite`, read from the bundle `hand_landmarker.task` at run time)
runs with LiteRT: input (N,224,224,3) float RGB in [0,1]; outputs 63 screen (x,y,z in crop pixels),
presence (1), handedness (1) and 63 world (metres, in the crop's rotated axes).
"""
from __future__ import annotations

import math
import pathlib
import threading
import zipfile
from dataclasses import dataclass

import numpy as np

from core.detector import Detection, crop_box
from core.errors import InputError, NoHandError, WeightsError
from core.paths import mediapipe_task_path

#: Model input side (pixels).
SIZE = 224
#: Name of the landmark model inside the bundle.
LANDMARK_MODEL = "hand_landmarks_detector.tflite"
#: Keypoints whose extent sets the re-crop (MediaPipe's landmarks → ROI: wrist, thumb base, finger bases
#: and first joints; the fingertips are left out so a bent or stretched finger does not move the crop).
ROI_POINTS = [0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18]
#: The views `HandSearcher._verify` shows the model of a kept hand: (zoom, turn in radians).
VERIFY_VIEWS = ((1.25, 0.35), (0.85, -0.35), (1.0, 0.7), (1.0, -0.7))
#: Crops per batched model call.
BATCH = 4
#: Handedness output above this → 'right' (true handedness, same convention as `HandDetector`).
HANDEDNESS_RIGHT_ABOVE = 0.5


@dataclass(frozen=True)
class SearchConfig:
    """The grid and thresholds of `HandSearcher.search` (tuned in docs/detection.md)."""

    #: Crop sides as fractions of the image's shorter side (largest first).
    scales: tuple[float, ...] = (2.0, 1.5, 1.0, 0.5, 0.25)
    #: Grid step as a fraction of the crop side.
    stride: float = 0.5
    #: Rotations tried per grid crop, in multiples of 90° (0..3).
    rotations: tuple[int, ...] = (0, 1, 2, 3)
    #: A grid crop whose presence passes this is refined.
    seed_threshold: float = 0.3
    #: A refined hand is kept when its presence passes this.
    threshold: float = 0.9
    #: Re-crops around the predicted keypoints.
    refine_steps: int = 2
    #: Two hands whose mean keypoint distance is below this × hand size are one hand.
    same_hand_tol: float = 0.25
    #: At most this many seeds are refined (highest presence first); bounds the time on busy images.
    max_seeds: int = 24
    #: A kept hand is shown again zoomed out/in and turned (VERIFY_VIEWS): all views but one must pass
    #: this presence… (0.8: below every real hand's on the photos of docs/detection.md, lowest 0.85)
    verify_threshold: float = 0.8
    #: …and give keypoints within this fraction of the hand's size (mean distance) of the kept ones.
    verify_tol: float = 0.25
    #: Hands smaller than this fraction of the image's shorter side are dropped.
    min_size: float = 0.04
    #: Square tiles (sides as fractions of the image's shorter side, step ½ tile) shown to MediaPipe's palm
    #: detector; its hands seed the refinement like grid crops do. The palm detector sees a whole tile at
    #: once at every hand size from ~⅒ of the tile up, so tiles find small hands (a crowd, a hand at the
    #: far edge of the frame) that the whole image, shrunk to the detector's 192 px, loses, at a fraction
    #: of the cost of a grid of small crops. Empty: no tiles.
    palm_tiles: tuple[float, ...] = (1.0, 0.5, 0.35)
    #: Step between palm tiles as a fraction of the tile side.
    tile_step: float = 0.5
    #: When the palm detector runs on tiles, grid scales below this are skipped: the grid is then for the
    #: hands the palm detector misses because they are big (a hand filling the frame) or unusual, and the
    #: tiles find the smaller hands at a fraction of the cost of a grid of small crops (~¾ of the grid).
    tiles_replace_below: float = 0.4
    #: A seed whose keypoints lie within this × hand size (mean distance) of a hand already refined is that
    #: hand and is not refined again, so `max_seeds` goes to hands not found yet.
    explained_tol: float = 0.5


# --------------------------------------------------------------------------- geometry

def _crop_to_image(center: np.ndarray, side: float, angle: float) -> np.ndarray:
    """2×3 affine map from crop pixels (0..SIZE) to image pixels for a square crop rotated by `angle`.

    `angle` (radians) is the direction of the crop's "up" axis measured like MediaPipe's ROI rotation:
    0 = the crop is upright in the image; positive = the crop is rotated counter-clockwise on screen.
    """
    s = side / SIZE
    c, si = math.cos(angle), math.sin(angle)
    # crop (u,v) → offset from the crop centre (du,dv)·s, rotated by -angle in image axes (y down).
    R = np.array([[c, si], [-si, c]]) * s
    t = np.asarray(center, np.float64) - R @ np.array([SIZE / 2, SIZE / 2])
    return np.concatenate([R, t[:, None]], 1)


def _invert_affine(A: np.ndarray) -> np.ndarray:
    R, t = A[:, :2], A[:, 2]
    Ri = np.linalg.inv(R)
    return np.concatenate([Ri, (-Ri @ t)[:, None]], 1)


def _apply_affine(A: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ A[:, :2].T + A[:, 2]


def _hand_roi(kp: np.ndarray) -> tuple[np.ndarray, float, float]:
    """MediaPipe's tracking ROI from 21 keypoints: (centre, side, angle).

    Angle: wrist (0) → middle-finger MCP (9) points "up" in the crop. Side: 2 × the extent of ROI_POINTS
    in the rotated frame; the centre moves 0.1 × side towards the fingers (as MediaPipe's landmarks→ROI).
    """
    d = kp[9] - kp[0]
    angle = math.atan2(-d[1], d[0]) - math.pi / 2   # 0 when the fingers point up (−y)
    c, s = math.cos(angle), math.sin(angle)
    # Rotate into the hand frame (fingers up), take the extent there.
    R = np.array([[c, -s], [s, c]])
    local = kp[ROI_POINTS] @ R.T
    lo, hi = local.min(0), local.max(0)
    mid_local = (lo + hi) / 2
    side = float(max(hi - lo)) * 2.0
    center = R.T @ mid_local
    up = np.array([-math.sin(angle), -math.cos(angle)])   # image direction of the fingers
    center = center + up * 0.1 * side
    return center, max(side, 8.0), angle


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def tight_box(kp: np.ndarray) -> np.ndarray:
    """Axis-aligned bounding box (x0,y0,x1,y1) of keypoints."""
    kp = np.asarray(kp, np.float64)
    return np.concatenate([kp.min(0), kp.max(0)])


def hand_size(kp: np.ndarray) -> float:
    """Longer side of the keypoints' bounding box (pixels)."""
    lo, hi = np.min(kp, 0), np.max(kp, 0)
    return float(max(hi - lo))


def keypoint_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance between two 21-keypoint sets (pixels)."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1).mean())


def same_hand(a: np.ndarray, b: np.ndarray, tol: float = 0.25) -> bool:
    """Two keypoint sets describe one hand: their mean keypoint distance is below `tol` × the smaller
    hand's size. (Box overlap would merge two hands that touch or cross, e.g. a heart gesture.)"""
    return keypoint_distance(a, b) < tol * min(hand_size(a), hand_size(b))


def _inside_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of box a's area inside box b."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    area = (a[2] - a[0]) * (a[3] - a[1])
    return max(0.0, x1 - x0) * max(0.0, y1 - y0) / area if area > 0 else 0.0


def is_fragment(small: np.ndarray, big: np.ndarray) -> bool:
    """Keypoints `small` describe a part of the hand `big` (a finger seen as a hand): mostly inside its
    box and clearly smaller."""
    return (hand_size(small) < 0.7 * hand_size(big)
            and _inside_fraction(tight_box(small), tight_box(big)) > 0.6)


def views_agree(presence, distance, threshold: float, tol: float) -> bool:
    """The verification rule: all views of a candidate but one see a hand (presence ≥ `threshold`) whose
    keypoints lie where the candidate's do (mean distance ≤ `tol`, in hand sizes)."""
    ok = (np.asarray(presence) >= threshold) & (np.asarray(distance) <= tol)
    return int(ok.sum()) >= len(ok) - 1


def is_union(kp: np.ndarray, hands: list[np.ndarray]) -> bool:
    """Keypoints `kp` straddle two of `hands` (a "hand" made of two touching hands, e.g. a heart
    gesture): its box holds most (> 0.6) of the boxes of two or more of them."""
    box = tight_box(kp)
    return sum(_inside_fraction(tight_box(h), box) > 0.6 for h in hands) >= 2


def drop_fragments(dets: list[Detection], others: list[Detection] = ()) -> list[Detection]:
    """`dets` less those that are fragments of a bigger hand among `dets` or `others`."""
    pool = list(dets) + list(others)
    return [d for d in dets if not any(is_fragment(d.keypoints2d, o.keypoints2d) for o in pool if o is not d)]


def nms(dets: list[Detection], tol: float = 0.25) -> list[Detection]:
    """Keep the highest-presence detection of each group of detections of one hand."""
    kept: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.extra.get("presence", d.score)):
        if not any(same_hand(d.keypoints2d, k.keypoints2d, tol) for k in kept):
            kept.append(d)
    return kept


# --------------------------------------------------------------------------- model

def load_landmark_model(task_path: str | pathlib.Path | None = None) -> bytes:
    """The landmark `.tflite` bytes, read from the MediaPipe bundle built at set-up (no download)."""
    path = pathlib.Path(task_path) if task_path else mediapipe_task_path()
    if not path.exists():
        raise WeightsError(f"{path}: MediaPipe hand_landmarker.task is missing; build it with: "
                           f"python scripts/build_mediapipe_task.py --out {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.read(LANDMARK_MODEL)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise WeightsError(f"{path}: no {LANDMARK_MODEL} in the bundle ({exc}); rebuild it with: "
                           f"python scripts/build_mediapipe_task.py --out {path}") from exc


class _Pyramid:
    """The image and its successive halvings (area-averaged), so big crops are not aliased."""

    def __init__(self, rgb: np.ndarray) -> None:
        import cv2

        self.levels = [np.ascontiguousarray(rgb)]
        while min(self.levels[-1].shape[:2]) >= 2 * SIZE // 2 and len(self.levels) < 8:
            self.levels.append(cv2.pyrDown(self.levels[-1]))

    def crop(self, A: np.ndarray) -> np.ndarray:
        """The SIZE×SIZE crop whose pixels map to image pixels through affine `A` (zero outside)."""
        import cv2

        scale = float(np.sqrt(abs(np.linalg.det(A[:, :2]))))   # image pixels per crop pixel
        lvl = 0
        while lvl + 1 < len(self.levels) and scale / 2 ** (lvl + 1) >= 1.0:
            lvl += 1
        f = 2.0 ** lvl
        Al = A / f   # crop → level-pixel coordinates (pyrDown: p_l = p / 2^l up to half a pixel)
        M = _invert_affine(Al)
        return cv2.warpAffine(self.levels[lvl], M, (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


class HandSearcher:
    """MediaPipe's hand-landmark model on crops (LiteRT, thread-safe via a lock)."""

    def __init__(self, task_path: str | pathlib.Path | None = None, num_threads: int = 2) -> None:
        model = load_landmark_model(task_path)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except Exception as exc:  # pragma: no cover - install problem
            raise WeightsError(f"ai-edge-litert cannot be imported ({exc}); run scripts/setup.sh") from exc
        from core.quiet import native_stderr_silenced

        # One interpreter per batch size (resizing one interpreter re-plans it, which costs more than
        # the batch saves): crops go through in batches of BATCH, the rest one by one.
        self._its = {}
        with native_stderr_silenced():
            for n in (1, BATCH):
                it = Interpreter(model_content=model, num_threads=num_threads)
                inp = it.get_input_details()[0]["index"]
                if n != 1:
                    it.resize_tensor_input(inp, [n, SIZE, SIZE, 3])
                it.allocate_tensors()
                outs = {d["name"]: d["index"] for d in it.get_output_details()}
                self._its[n] = (it, inp, (outs["Identity"], outs["Identity_1"], outs["Identity_2"],
                                          outs["Identity_3"]))
        self._lock = threading.Lock()
        #: Model evaluations so far (for timing reports).
        self.evaluations = 0

    # raw model -------------------------------------------------------------
    def run_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Model outputs for uint8 crops (N,224,224,3): screen (N,21,3), presence (N,), handedness (N,),
        world (N,21,3)."""
        x = np.asarray(crops, np.float32) / 255.0
        n = x.shape[0]
        parts = []
        with self._lock:
            i = 0
            while i < n:
                b = BATCH if n - i >= BATCH else 1
                it, inp, outs = self._its[b]
                it.set_tensor(inp, np.ascontiguousarray(x[i:i + b]))
                it.invoke()
                parts.append([it.get_tensor(o).reshape(b, -1).copy() for o in outs])
                i += b
            self.evaluations += n
        scr, pres, hand, world = (np.concatenate([p[k] for p in parts]) for k in range(4))
        return (scr.reshape(n, 21, 3), pres.reshape(n), hand.reshape(n), world.reshape(n, 21, 3))

    def _evaluate(self, pyr: _Pyramid, rois: list[tuple[np.ndarray, float, float]]) -> list[dict]:
        """Run the model on rotated square ROIs (centre, side, angle); keypoints back in image pixels."""
        if not rois:
            return []
        maps = [_crop_to_image(c, s, a) for c, s, a in rois]
        scr, pres, hand, world = self.run_crops(np.stack([pyr.crop(A) for A in maps]))
        out = []
        for i, (A, (c, s, a)) in enumerate(zip(maps, rois)):
            kp = _apply_affine(A, scr[i, :, :2].astype(np.float64))
            # World landmarks come in the crop's rotated axes: undo the ROI rotation about z.
            ca, sa = math.cos(a), math.sin(a)
            Rz = np.array([[ca, sa, 0], [-sa, ca, 0], [0, 0, 1.0]])
            out.append(dict(kp=kp, z=scr[i, :, 2].astype(np.float64) * s / SIZE,
                            presence=float(pres[i]), handedness=float(hand[i]),
                            world=world[i].astype(np.float64) @ Rz.T, roi=(c, s, a)))
        return out

    def _refine(self, pyr: _Pyramid, seeds: list[dict], steps: int) -> list[dict]:
        cur = seeds
        for _ in range(steps):
            nxt = self._evaluate(pyr, [_hand_roi(r["kp"]) for r in cur])
            # keep the better of the seed and its refinement (refinement can drift off a weak hand)
            cur = [n if n["presence"] >= r["presence"] - 0.05 else r for r, n in zip(cur, nxt)]
        return cur

    def _refine_seeds(self, pyr: _Pyramid, seeds: list[dict], cfg: SearchConfig) -> list[dict]:
        """Refine seeds best first, a few at a time, skipping seeds that lie on a hand already refined
        (presence ≥ `cfg.threshold`): a big hand yields dozens of seeds, and refining them all would spend
        the `max_seeds` budget before the seeds of a second, smaller or overlapping hand get their turn."""
        # Hands the palm detector found on a tile are refined first and never skipped (two clasped or
        # crossed hands lie within `explained_tol` of each other), one copy per hand.
        palm = _nms_raw(sorted((r for r in seeds if r.get("palm_tile")), key=lambda r: -r["presence"]),
                        cfg.same_hand_tol)[: cfg.max_seeds]
        refined = self._refine(pyr, palm, cfg.refine_steps) if palm else []
        pending = sorted((r for r in seeds if not r.get("palm_tile")), key=lambda r: -r["presence"])
        budget = cfg.max_seeds - len(palm)
        while pending and budget > 0:
            hands = [r for r in refined if r["presence"] >= cfg.threshold]
            pending = [p for p in pending
                       if not any(same_hand(p["kp"], h["kp"], cfg.explained_tol) for h in hands)]
            batch, pending = pending[:min(2 * BATCH, budget)], pending[2 * BATCH:]
            budget -= len(batch)
            refined += self._refine(pyr, batch, cfg.refine_steps)
        return refined

    def _palm_tile_seeds(self, pyr: _Pyramid, img: np.ndarray, cfg: SearchConfig, detector) -> list[dict]:
        """Seeds from MediaPipe's palm detector run on square tiles (`cfg.palm_tiles`), each shown to the
        landmark model once in the hand's own ROI (so its presence is comparable with the grid's)."""
        if detector is None or not cfg.palm_tiles:
            return []
        h, w = img.shape[:2]
        short = min(h, w)
        rois = []
        for f in cfg.palm_tiles:
            side = int(round(f * short))
            if side < 32:
                continue
            step = side * cfg.tile_step
            for cy in _positions(h, side, step):
                for cx in _positions(w, side, step):
                    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
                    x0, y0 = min(max(x0, 0), w - side), min(max(y0, 0), h - side)
                    try:
                        found = detector.detect(np.ascontiguousarray(img[y0:y0 + side, x0:x0 + side]))
                    except NoHandError:
                        continue
                    rois += [_hand_roi(d.keypoints2d + [x0, y0]) for d in found]
        out = self._evaluate(pyr, rois)
        for r in out:
            r["palm_tile"] = True
        return out

    # public API ------------------------------------------------------------
    def search(self, rgb: np.ndarray, config: SearchConfig | None = None, detector=None) -> list[Detection]:
        """Every hand the search finds (possibly none), largest first.

        Seeds come from a grid of crops shown to the landmark model and, when `detector` (a
        `core.detector.HandDetector`) is given, from its palm detector on tiles (`SearchConfig.palm_tiles`);
        seeds are refined, verified and merged the same way whatever their source."""
        cfg = config or SearchConfig()
        img = _check_rgb(rgb)
        h, w = img.shape[:2]
        pyr = _Pyramid(img)
        short = min(h, w)
        tiles = detector is not None and bool(cfg.palm_tiles)
        grid: list[tuple[np.ndarray, float, float]] = []
        for f in cfg.scales:
            if tiles and f < cfg.tiles_replace_below:
                continue
            side = f * short
            step = max(side * cfg.stride, 1.0)
            for cy in _positions(h, side, step):
                for cx in _positions(w, side, step):
                    for k in cfg.rotations:
                        grid.append((np.array([cx, cy]), side, k * math.pi / 2))
        results = []
        for i in range(0, len(grid), 16):
            results += self._evaluate(pyr, grid[i:i + 16])
        seeds = [r for r in results if r["presence"] >= cfg.seed_threshold]
        seeds.sort(key=lambda r: -r["presence"])
        seeds = _nms_raw(seeds, 0.1)
        seeds += [r for r in self._palm_tile_seeds(pyr, img, cfg, detector) if r["presence"] >= cfg.seed_threshold]
        refined = self._refine_seeds(pyr, seeds, cfg)
        min_px = max(cfg.min_size * short, 12.0)
        cands = [r for r in refined if r["presence"] >= cfg.threshold and hand_size(r["kp"]) >= min_px]
        cands = _nms_raw(sorted(cands, key=lambda r: -r["presence"]), 0.05)   # near-identical copies
        cands = self._verify(pyr, cands, cfg)
        cands = _nms_raw(sorted(cands, key=lambda r: -r["verify"][0]), cfg.same_hand_tol)
        dets = drop_fragments([_to_detection(r, (w, h), "search") for r in cands])
        dets.sort(key=lambda d: -d.area)
        return dets

    def _verify(self, pyr: _Pyramid, cands: list[dict], cfg: SearchConfig) -> list[dict]:
        """Keep candidates the model still sees as the same hand when zoomed out/in and turned by ±20°
        and ±40°: real hands mostly are (the model's presence tolerates ~±40° and 0.7-1.4× zoom), texture
        or a finger that happens to pass the presence threshold mostly is not. All views but one must see
        a hand (presence ≥ `verify_threshold`) with its keypoints where the kept crop put them (mean
        distance ≤ `verify_tol` × hand size); the one view may fail either way — a zoomed-out view of a
        hand at a face takes in the face, one of two overlapping hands may pull a zoomed-out view over."""
        if not cands:
            return []
        rois = []
        for r in cands:
            c, s, a = _hand_roi(r["kp"])
            rois += [(c, s * z, a + t) for z, t in VERIFY_VIEWS]
        views = self._evaluate(pyr, rois)
        kept, n = [], len(VERIFY_VIEWS)
        for i, r in enumerate(cands):
            v = views[n * i: n * i + n]
            size = hand_size(r["kp"])
            pres = np.array([x["presence"] for x in v])
            dist = np.array([keypoint_distance(r["kp"], x["kp"]) for x in v]) / size
            # (second-lowest presence, second-largest distance): what the all-but-one rule tested
            r["verify"] = (float(np.sort(pres)[1]), float(np.sort(dist)[-2]))
            if views_agree(pres, dist, cfg.verify_threshold, cfg.verify_tol):
                kept.append(r)
        return kept

    def landmarks_in_box(self, rgb: np.ndarray, box, min_presence: float = 0.5,
                         refine_steps: int = 2) -> Detection:
        """Landmarks of the hand inside a user-drawn box (x0,y0,x1,y1): the best of 4 rotations by
        presence, then refined. Raises NoHandError when the best presence is below `min_presence`."""
        img = _check_rgb(rgb)
        h, w = img.shape[:2]
        b = np.asarray(box, np.float64).reshape(-1)
        if b.shape != (4,) or not np.all(np.isfinite(b)):
            raise InputError(f"a box is x0,y0,x1,y1 (4 finite numbers), got {box!r}")
        x0, x1 = sorted(b[[0, 2]])
        y0, y1 = sorted(b[[1, 3]])
        if x1 - x0 < 4 or y1 - y0 < 4:
            raise InputError(f"the box is too small ({x1 - x0:.0f}×{y1 - y0:.0f} px; at least 4×4)")
        pyr = _Pyramid(img)
        c = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        long = max(x1 - x0, y1 - y0)
        rois = [(c, long * m, k * math.pi / 2) for m in (1.0, 1.5) for k in range(4)]
        cands = self._evaluate(pyr, rois)
        best = max(cands, key=lambda r: r["presence"])
        best = self._refine(pyr, [best], refine_steps)[0]
        if best["presence"] < min_presence:
            raise NoHandError(f"no hand in the box (hand presence {best['presence']:.2f} "
                              f"< {min_presence:.2f})")
        return _to_detection(best, (w, h), "box")


def _positions(length: int, side: float, step: float) -> list[float]:
    """Crop centres along one axis: the crops cover [0, length], evenly spread, ≥ 1 crop."""
    if side >= length:
        return [length / 2]
    n = int(math.ceil((length - side) / step)) + 1
    return list(np.linspace(side / 2, length - side / 2, n))


def _nms_raw(rs: list[dict], tol: float) -> list[dict]:
    kept: list[dict] = []
    for r in rs:
        if not any(same_hand(r["kp"], k["kp"], tol) for k in kept):
            kept.append(r)
    return kept


def _to_detection(r: dict, size: tuple[int, int], source: str) -> Detection:
    p_right = r["handedness"]
    side = "right" if p_right > HANDEDNESS_RIGHT_ABOVE else "left"
    conf = max(p_right, 1 - p_right)
    kp = r["kp"]
    return Detection(keypoints2d=kp, scores=np.full(21, r["presence"]), score=float(conf),
                     handedness=side, box=crop_box(kp), world_landmarks=r["world"], image_size=size,
                     keypoints_z=r["z"],
                     extra={"source": source, "presence": r["presence"], "handedness_score": conf,
                            **({"verify": r["verify"]} if "verify" in r else {})})


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[2] != 3:
        raise InputError(f"expected an RGB image (H,W,3), got shape {img.shape}")
    if img.dtype != np.uint8:
        raise InputError(f"expected a uint8 image, got {img.dtype}")
    if min(img.shape[:2]) < 8:
        raise InputError(f"the image is too small ({img.shape[1]}×{img.shape[0]} px)")
    return img


_DEFAULT: HandSearcher | None = None


def default_searcher() -> HandSearcher:
    """Process-wide searcher (built once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = HandSearcher()
    return _DEFAULT


# --------------------------------------------------------------------------- the two finders together

#: Detector modes of `find_hands` (and `pose-viewer infer --detector`).
MODES = ("palm", "search", "auto")


def merge_detections(primary: list[Detection], extra: list[Detection], tol: float = 0.25,
                     iou: float = 0.5) -> list[Detection]:
    """`primary` plus every hand of `extra` that is not one of them (largest first).

    A hand of `extra` is a primary hand when their keypoints agree (`same_hand`) or, since two finders
    may disagree on a hand's keypoints more than one finder's copies do, when their keypoint boxes overlap
    by IoU > `iou`. Each primary hand stands for at most one hand of `extra` (the nearest by keypoint
    distance): of two overlapping hands of `extra` (one hand in front of the other) the second is kept.
    Hands of `extra` that are fragments of a primary hand or straddle two (`is_union`) are dropped."""
    extra = [d for d in drop_fragments(extra, primary) if not is_union(d.keypoints2d, [p.keypoints2d for p in primary])]
    pairs = []
    for i, d in enumerate(extra):
        box = tight_box(d.keypoints2d)
        for j, p in enumerate(primary):
            if same_hand(d.keypoints2d, p.keypoints2d, tol) or _iou(box, tight_box(p.keypoints2d)) > iou:
                pairs.append((keypoint_distance(d.keypoints2d, p.keypoints2d), i, j))
    taken_extra, taken_primary = set(), set()
    for _, i, j in sorted(pairs):
        if i not in taken_extra and j not in taken_primary:
            taken_extra.add(i)
            taken_primary.add(j)
    out = list(primary) + [d for i, d in enumerate(extra) if i not in taken_extra]
    out.sort(key=lambda d: -d.area)
    return out


def find_hands(rgb: np.ndarray, mode: str = "auto", want_all: bool = False, detector=None,
               searcher: HandSearcher | None = None, config: SearchConfig | None = None) -> list[Detection]:
    """All hands found in an RGB uint8 image, largest first; raises NoHandError when none.

    mode 'palm': MediaPipe's palm detector + landmarks (the HandLandmarker task) only; 'search': the
    landmark model's crop search only; 'auto': the palm detector first, the search when it finds
    nothing or when every hand is wanted (`want_all`), the two merged (a palm-detector hand wins).
    """
    if mode not in MODES:
        raise InputError(f"unknown detector {mode!r} (choose from {', '.join(MODES)})")
    palm: list[Detection] = []
    if mode in ("palm", "auto"):
        if detector is None:
            from core.detector import default_detector

            detector = default_detector()
        try:
            palm = detector.detect(rgb)
        except NoHandError:
            palm = []
        for d in palm:
            d.extra.setdefault("source", "palm")
        if mode == "palm" or (palm and not want_all):
            if not palm:
                raise NoHandError("no hand detected in the image")
            return palm
    if detector is None and (config or SearchConfig()).palm_tiles:
        from core.detector import default_detector

        detector = default_detector()
    found = (searcher or default_searcher()).search(rgb, config, detector=detector)
    out = merge_detections(palm, found)
    if not out:
        raise NoHandError("no hand detected in the image (palm detector and crop search)")
    return out
