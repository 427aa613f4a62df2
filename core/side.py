"""Which hand is it? The side (left / right) of a detected hand, decided from per-hand evidence (issue 28).

Every result depends on the side: a left hand is mirrored before lifting and mirrored back after
(DESIGN §3), so a wrong side gives a mirrored hand. MediaPipe's handedness label is one piece of
evidence; the others used here:

- **the label's own confidence** (`Detection.score`, the handedness classifier's probability);
- **the mirror check**: the same detector on the horizontally mirrored image must see the other side.
  Its label there, turned back, is a second reading of the same classifier on different pixels; a
  classifier that leans one way on an ambiguous hand leans the same way on the mirror, so averaging the
  two cancels that lean (`p_right = (p(image) + 1 - p(mirror)) / 2`);
- **the view vote**: MediaPipe's hand-landmark model (`core.hand_search`) is shown `VIEWS` of the hand
  — its tracking crop upright, turned ±15°, zoomed out and in, each also mirrored — and each view's 3D
  world landmarks vote for a side by their **chirality**: the sign of (index MCP − wrist) × (pinky MCP
  − wrist) · (thumb MCP − wrist) is + for a right hand, − for a left one (`chirality`). The label
  comes from one crop, and its errors depend on the crop: over several crops the errors mostly cancel;
  the 3D head's chirality is the steadier reading (measured in docs/results.md "Hand side");
- **the views' handedness**: the same views' handedness outputs (mean log-odds, weight ½);
- the chirality of the detector's own 3D landmarks (world and image), used only when there is no view
  vote.

`decide_side` combines them (rules in its docstring) and returns a `SideDecision`: the side, a
confidence in [0.5, 1], and which evidence decided. The view set, the vote's weight and the abstain
threshold were chosen on one half of the mirrored and augmented real images and checked on the other
(training/eval_side.py `tune`); the views' handedness term and the guard of confident labels (the
mirror check and the views must both disagree) were chosen among the variants of `eval_side rules`
and checked on variants and renders collected after the choice (docs/results.md "Hand side").
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SIDES = ("left", "right")

#: Without a view vote, a label at least this sure is kept whatever the rest says ("confident label"); the
#: mirror check runs only for hands below it when there are no views.
CONFIDENT_LABEL = 0.9
#: A chirality counts only when |normalised chirality| ≥ this (a flat or edge-on palm: the sign is noise).
CHIRALITY_MIN = 0.1
#: Without a view vote: the weight of the detector's world and image chiralities when they agree, in
#: log-odds (1.5 ≈ a reading that is right 82 % of the time).
CHIRALITY_WEIGHT = 1.5

# --- the landmark model shown several views of the hand ------------------------------------------------

@dataclass(frozen=True)
class View:
    """One view of a hand's crop: turned by `turn` degrees from upright, the crop side × `zoom`, moved by
    `shift` (fractions of the crop side, in the crop's axes), and flipped left-right when `mirrored` (the
    model then sees the other side: its reading is turned back)."""

    turn: float = 0.0
    zoom: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    mirrored: bool = False


#: The views of `read_views` whose chiralities vote: MediaPipe's tracking crop upright, turned ±15°,
#: zoomed out (×1.25) and in (×0.8), each as is and mirrored (so the set is its own mirror image and a
#: mirrored photo gets the mirrored vote). Turns of 90° and more are left out: the model expects an
#: upright hand and reads them at chance (measured).
VIEWS: tuple[View, ...] = tuple(View(t, z, (0.0, 0.0), m) for m in (False, True)
                                for t, z in ((0, 1.0), (15, 1.0), (-15, 1.0), (0, 1.25), (0, 0.8)))
#: The weight of a unanimous view vote, in log-odds; a vote of k views for and j against is
#: VIEW_VOTE_WEIGHT × (k − j) / len(VIEWS).
VIEW_VOTE_WEIGHT = 8.0
#: The weight of the views' own handedness readings: their mean log-odds of "right" (each clipped to ±4,
#: `ViewReadings.log_odds`) times this joins the sum.
VIEW_HANDEDNESS_WEIGHT = 0.5
#: With views, a confident label (≥ CONFIDENT_LABEL) is overturned only when both other readings disagree
#: with it: the mirror check (its P(right) on the other side of ½) and the view vote (at least this far
#: against it: one view net of 10). One of them alone — a crop the handedness classifier reads the other way,
#: or views whose 3D flips on an odd pose — never overturns a confident label (docs/results.md "Hand side").
CONFIDENT_VOTE = 0.1


def hand_crop_map(keypoints2d: np.ndarray, view: View = View(), size: int = 224) -> np.ndarray:
    """2×3 affine map from crop pixels (size × size) to image pixels for one view of a hand: MediaPipe's
    landmarks → ROI rule (wrist → middle-finger MCP points up; side = 2 × the extent of the palm and
    finger-base keypoints; the centre moved 0.1 × side towards the fingers), then the view's turn, zoom
    and shift."""
    from core.hand_search import ROI_POINTS

    kp = np.asarray(keypoints2d, np.float64)
    up = kp[9] - kp[0]
    up = up / (np.linalg.norm(up) or 1.0)
    ey = -up                                    # crop "down" (towards the wrist) in image axes
    ex = np.array([ey[1], -ey[0]])              # crop "right": a rotation, not a reflection
    t = math.radians(view.turn)
    c, s = math.cos(t), math.sin(t)
    ex, ey = c * ex + s * ey, -s * ex + c * ey
    local = (kp[ROI_POINTS] - kp[0]) @ np.stack([ex, ey]).T
    lo, hi = local.min(0), local.max(0)
    side = max(float(max(hi - lo)) * 2.0, 8.0)
    centre = kp[0] + ((lo + hi) / 2) @ np.stack([ex, ey]) + 0.1 * side * up
    side *= view.zoom
    centre = centre + side * (view.shift[0] * ex + view.shift[1] * ey)
    f = side / size
    return np.column_stack([f * ex, f * ey, centre - 0.5 * side * (ex + ey)])


def hand_view_crops(image: np.ndarray, keypoints2d: np.ndarray, views, size: int = 224) -> np.ndarray:
    """The (N, size, size, 3) uint8 crops of `views` of the hand with these keypoints (outside the image:
    black). Large hands are shrunk first (area averaging), so the crop is not aliased."""
    import cv2

    img = np.ascontiguousarray(np.asarray(image))
    maps = [hand_crop_map(keypoints2d, v, size) for v in views]
    scale = min(float(np.sqrt(abs(np.linalg.det(A[:, :2])))) for A in maps)   # image px per crop px
    f = 1.0
    if scale > 1.5:
        f = 1.0 / scale
        img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    out = np.empty((len(maps), size, size, 3), np.uint8)
    for i, (A, v) in enumerate(zip(maps, views)):
        crop = cv2.warpAffine(img, A * f, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        out[i] = crop[:, ::-1] if v.mirrored else crop
    return out


@dataclass
class ViewReadings:
    """The landmark model's readings of each view, turned back to the hand as it is in the image:
    P(right) (N,), hand presence (N,), and the chirality of its world landmarks (N,)."""

    p_right: np.ndarray
    presence: np.ndarray
    chirality: np.ndarray


def views_log_odds(readings: ViewReadings) -> float:
    """The views' mean log-odds of "right" from their handedness outputs, each clipped to ±4 (one
    overconfident view cannot outweigh the rest)."""
    p = np.clip(np.asarray(readings.p_right, np.float64), 1e-3, 1 - 1e-3)
    return float(np.clip(np.log(p / (1 - p)), -4.0, 4.0).mean()) if p.size else 0.0


def read_views(searcher, image: np.ndarray, keypoints2d: np.ndarray, views) -> ViewReadings:
    """Show `searcher` (a `core.hand_search.HandSearcher`: MediaPipe's hand-landmark model) each view of
    one hand in one batched call; mirrored views' readings are turned back (1 − P(right), −chirality)."""
    crops = hand_view_crops(image, keypoints2d, views)
    _, presence, hand, world = searcher.run_crops(crops)
    flip = np.array([v.mirrored for v in views])
    pr = np.where(flip, 1.0 - hand, hand).astype(np.float64)
    ch = np.array([chirality(w) for w in world]) * np.where(flip, -1.0, 1.0)
    return ViewReadings(pr, np.asarray(presence, np.float64), ch)


def view_vote(readings: ViewReadings, min_chirality: float = CHIRALITY_MIN) -> float:
    """The views' vote in [-1, 1] (+1: all say right): the mean of their chiralities' signs, a view whose
    |chirality| is below `min_chirality` abstaining."""
    ch = np.asarray(readings.chirality, np.float64)
    if ch.size == 0:
        return 0.0
    return float(np.mean(np.where(np.abs(ch) >= min_chirality, np.sign(ch), 0.0)))


def other(side: str) -> str:
    """'left' ↔ 'right'."""
    check_side(side)
    return "right" if side == "left" else "left"


def check_side(side: str) -> str:
    """`side` if it is 'left' or 'right', else InputError."""
    from core.errors import InputError

    if side not in SIDES:
        raise InputError(f"side must be 'left' or 'right', got {side!r}")
    return side


def chirality(points: np.ndarray) -> float:
    """Signed volume of the palm frame of 21 MediaPipe-order points, normalised to [-1, 1]:
    ((index MCP − wrist) × (pinky MCP − wrist)) · (thumb MCP − wrist) / (product of the three lengths).
    > 0 for a right hand, < 0 for a left hand in a right-handed frame (OpenCV camera axes, MediaPipe's
    world and image landmarks); 0 for degenerate input."""
    p = np.asarray(points, np.float64)
    if p.shape != (21, 3) or not np.isfinite(p).all():
        return 0.0
    a, b, c = p[5] - p[0], p[17] - p[0], p[2] - p[0]
    den = np.linalg.norm(a) * np.linalg.norm(b) * np.linalg.norm(c)
    return float(np.dot(np.cross(a, b), c) / den) if den > 1e-12 else 0.0


def p_right(label: str, confidence: float) -> float:
    """The label and its confidence as P(right)."""
    c = float(np.clip(confidence, 0.0, 1.0))
    return c if check_side(label) == "right" else 1.0 - c


@dataclass
class SideEvidence:
    """What is known about one hand's side. Chiralities are normalised (`chirality`), None when unknown."""

    label: str                                  # detector's handedness label
    label_confidence: float                     # its probability, in [0.5, 1]
    world_chirality: float | None = None        # from MediaPipe's 3D world landmarks
    image_chirality: float | None = None        # from the image landmarks (x, y, relative depth)
    mirror_p_right: float | None = None         # P(right) read on the mirrored image, turned back
    view_vote: float | None = None              # the views' chirality vote in [-1, 1] (`view_vote`)
    view_log_odds: float | None = None          # the views' handedness, mean log-odds of right (`views_log_odds`)

    @classmethod
    def from_detection(cls, det, mirror_det=None, views: ViewReadings | None = None) -> "SideEvidence":
        """Evidence of a `core.detector.Detection` (and the same hand found in the mirrored image, and the
        landmark model's readings of `VIEWS` of it)."""
        label, score = det.extra.get("label", (det.handedness, det.score))   # before any `apply_side`
        wc = chirality(det.world_landmarks) if det.world_landmarks is not None else None
        ic = None
        if getattr(det, "keypoints_z", None) is not None:
            ic = chirality(np.concatenate([det.keypoints2d, np.asarray(det.keypoints_z)[:, None]], 1))
        mp = None
        if mirror_det is not None:   # the mirror image's left is this image's right
            m_label, m_score = mirror_det.extra.get("label", (mirror_det.handedness, mirror_det.score))
            mp = 1.0 - p_right(m_label, m_score)
        vv = vp = None
        if views is not None:
            vv, vp = view_vote(views), views_log_odds(views)
        return cls(label, float(score), wc, ic, mp, vv, vp)


@dataclass
class SideDecision:
    """The chosen side, its confidence in [0.5, 1], and which evidence decided it."""

    side: str
    confidence: float
    decided_by: str          # 'forced' | 'label' | 'mirror-check' | 'chirality'
    evidence: SideEvidence | None = None

    def describe(self) -> str:
        """One line for people: 'left hand (forced)', 'right hand, 97 % (label)', 'left hand, 83 % (mirror
        check)' — the window's status bar and box label."""
        if self.decided_by == "forced":
            return f"{self.side} hand (forced)"
        return f"{self.side} hand, {100 * self.confidence:.0f} % ({self.decided_by.replace('-', ' ')})"

    def npz(self) -> dict[str, np.ndarray]:
        """The result.npz keys: side, side_confidence, side_decided_by, side_label, side_label_confidence,
        and side_view_vote (in [-1, 1], +1: every view says right) and side_view_log_odds (the views'
        handedness, mean log-odds of right) when the views voted."""
        d = {"side": np.array(self.side), "side_confidence": np.float32(self.confidence),
             "side_decided_by": np.array(self.decided_by)}
        if self.evidence is not None:
            d.update(side_label=np.array(self.evidence.label),
                     side_label_confidence=np.float32(self.evidence.label_confidence))
            if self.evidence.view_vote is not None:
                d["side_view_vote"] = np.float32(self.evidence.view_vote)
            if self.evidence.view_log_odds is not None:
                d["side_view_log_odds"] = np.float32(self.evidence.view_log_odds)
        return d


def _sign(c: float | None) -> int:
    """A chirality as a sign (+1 right, −1 left), 0 when unknown or weaker than CHIRALITY_MIN."""
    if c is None or not math.isfinite(c) or abs(c) < CHIRALITY_MIN:
        return 0
    return 1 if c > 0 else -1


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def decide_side(ev: SideEvidence, forced: str | None = None) -> SideDecision:
    """The side of one hand, with P(that side) as the confidence.

    1. `forced` ('left' / 'right'; None or 'auto' decide) wins, confidence 1.
    2. The evidence is summed in log-odds of "right": the label's P(right), averaged with the mirror
       check's when there is one, plus VIEW_VOTE_WEIGHT × the view vote and VIEW_HANDEDNESS_WEIGHT × the
       views' handedness log-odds when there are views; the side is the sign of the sum (the label on a
       tie). A confident label (≥ CONFIDENT_LABEL) is overturned only when the mirror check and the view
       vote (by at least CONFIDENT_VOTE) both disagree with it.
    3. Without a view vote (the older rule): plus ±CHIRALITY_WEIGHT when the detector's world and image
       chiralities agree in sign and are both at least CHIRALITY_MIN, and a confident label
       (≥ CONFIDENT_LABEL) is kept whatever the sum says (its confidence is then the sum's P of the
       label's side, below 0.5 when the rest disagrees: a hand worth a look).
    `decided_by` names what set the side: 'label', or — where the side differs from the label —
    'mirror-check' when the averaged label alone already disagrees with the label, else 'chirality'.
    """
    if forced is not None and forced != "auto":
        return SideDecision(check_side(forced), 1.0, "forced", ev)
    pr_label = p_right(ev.label, ev.label_confidence)
    pr = pr_label if ev.mirror_p_right is None else 0.5 * (pr_label + float(ev.mirror_p_right))
    if ev.view_vote is not None:
        score = (_logit(pr) + VIEW_VOTE_WEIGHT * float(ev.view_vote)
                 + VIEW_HANDEDNESS_WEIGHT * float(ev.view_log_odds or 0.0))
        towards_label = 1.0 if ev.label == "right" else -1.0      # + towards the label's side
        both_disagree = (ev.mirror_p_right is not None and towards_label * (ev.mirror_p_right - 0.5) < 0
                         and -towards_label * float(ev.view_vote) >= CONFIDENT_VOTE)
        keep_label = score == 0 or (ev.label_confidence >= CONFIDENT_LABEL and not both_disagree)
    else:
        w, i = _sign(ev.world_chirality), _sign(ev.image_chirality)
        score = _logit(pr) + CHIRALITY_WEIGHT * (w if w == i else 0)
        keep_label = ev.label_confidence >= CONFIDENT_LABEL or score == 0
    side = ev.label if keep_label else ("right" if score > 0 else "left")
    p_side = 1 / (1 + math.exp(-score))
    conf = p_side if side == "right" else 1 - p_side
    if side == ev.label:
        by = "label"
    elif (pr > 0.5) == (side == "right") and pr != 0.5:
        by = "mirror-check"
    else:
        by = "chirality"
    return SideDecision(side, float(conf), by, ev)


def match_mirrored(dets: list, mirror_dets: list, width: int, tol: float = 0.25) -> list:
    """For each detection, the detection of the same hand in the horizontally mirrored image (or None):
    mirrored back (u → W − u), the nearest by mean keypoint distance within `tol` × the hand's box side."""
    out: list = [None] * len(dets)
    used: set[int] = set()
    for i, d in enumerate(dets):
        side = float(d.box[2] - d.box[0]) or 1.0
        best, best_j = tol * side, None
        for j, m in enumerate(mirror_dets):
            if j in used:
                continue
            back = np.array(m.keypoints2d, np.float64)
            back[:, 0] = width - back[:, 0]
            dist = float(np.linalg.norm(back - d.keypoints2d, axis=1).mean())
            if dist < best:
                best, best_j = dist, j
        if best_j is not None:
            used.add(best_j)
            out[i] = mirror_dets[best_j]
    return out


def decide_sides(detector, image: np.ndarray, dets: list, forced: str | None = None,
                 mirror_check: bool = True, views: bool = True, searcher=None) -> list[SideDecision]:
    """Side decisions for the detections of one RGB image, not run when `forced`. The mirror check runs
    `detector` once more on the mirrored image (~25-80 ms on this CPU; hands it does not find go on
    without it); the view vote shows `searcher` (default: `core.hand_search.default_searcher()`) the
    10 `VIEWS` of each hand (~0.1 s a hand at one thread). `mirror_check=False` / `views=False` leave
    them out (without views the mirror check runs only when some label is below CONFIDENT_LABEL, as in
    the older rule)."""
    if forced is not None and forced != "auto":
        return [decide_side(SideEvidence.from_detection(d), forced) for d in dets]
    img = np.asarray(image)
    mirrors: list = [None] * len(dets)
    unsure = [d for d in dets if d.extra.get("label", (d.handedness, d.score))[1] < CONFIDENT_LABEL]
    if mirror_check and dets and (views or unsure):
        from core.errors import NoHandError

        try:
            found = detector.detect(np.ascontiguousarray(img[:, ::-1]))
        except NoHandError:
            found = []
        mirrors = match_mirrored(dets, found, img.shape[1])
    readings: list = [None] * len(dets)
    if views and dets:
        if searcher is None:
            from core.hand_search import default_searcher

            searcher = default_searcher()
        readings = [read_views(searcher, img, d.keypoints2d, VIEWS) for d in dets]
    return [decide_side(SideEvidence.from_detection(d, m, r)) for d, m, r in zip(dets, mirrors, readings)]


def apply_side(det, decision: SideDecision):
    """Set a detection's side (what the lifting mirrors by) and keep the decision in `det.extra["side"]`
    (the detector's own label and confidence stay in `det.extra["label"]`)."""
    det.extra.setdefault("label", (det.handedness, float(det.score)))
    det.handedness = decision.side
    det.extra["side"] = decision
    return det
