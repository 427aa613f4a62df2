"""Which hand is it? The side (left / right) of a detected hand, decided from per-hand evidence (issue 28).

Every result depends on the side: a left hand is mirrored before lifting and mirrored back after
(DESIGN §3), so a wrong side gives a mirrored hand. MediaPipe's handedness label is one piece of
evidence; the others used here:

- **the label's own confidence** (`Detection.score`, the handedness classifier's probability);
- **the mirror check**: the same detector on the horizontally mirrored image must see the other side.
  Its label there, turned back, is a second reading of the same classifier on different pixels; a
  classifier that leans one way on an ambiguous hand leans the same way on the mirror, so averaging the
  two cancels that lean (`p_right = (p(image) + 1 - p(mirror)) / 2`);
- **chirality** of MediaPipe's 3D landmarks: the sign of (index MCP − wrist) × (pinky MCP − wrist) ·
  (thumb MCP − wrist) is + for a right hand, − for a left one (`chirality`), from the world landmarks
  and from the image landmarks' relative depth. They come from the same network as the label but
  from its 3D head, and are often right where the label is not (and the reverse).

`decide_side` combines them (rules in its docstring) and returns a `SideDecision`: the side, a
confidence in [0.5, 1], and which evidence decided. The thresholds are round numbers chosen on mirrored
real and synthetic images (training/eval_side.py, docs/results.md "Hand side"), not fitted per image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SIDES = ("left", "right")

#: A label at least this sure is kept whatever the other evidence says ("confident label").
CONFIDENT_LABEL = 0.9
#: A chirality counts only when |normalised chirality| ≥ this (a flat or edge-on palm: the sign is noise),
#: and only when the world and the image landmarks agree on it.
CHIRALITY_MIN = 0.1
#: The weight of an agreeing chirality pair, in log-odds (1.5 ≈ a reading that is right 82 % of the time).
CHIRALITY_WEIGHT = 1.5

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

    @classmethod
    def from_detection(cls, det, mirror_det=None) -> "SideEvidence":
        """Evidence of a `core.detector.Detection` (and the same hand found in the mirrored image)."""
        label, score = det.extra.get("label", (det.handedness, det.score))   # before any `apply_side`
        wc = chirality(det.world_landmarks) if det.world_landmarks is not None else None
        ic = None
        if getattr(det, "keypoints_z", None) is not None:
            ic = chirality(np.concatenate([det.keypoints2d, np.asarray(det.keypoints_z)[:, None]], 1))
        mp = None
        if mirror_det is not None:   # the mirror image's left is this image's right
            m_label, m_score = mirror_det.extra.get("label", (mirror_det.handedness, mirror_det.score))
            mp = 1.0 - p_right(m_label, m_score)
        return cls(label, float(score), wc, ic, mp)


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
        """The result.npz keys: side, side_confidence, side_decided_by, side_label, side_label_confidence."""
        d = {"side": np.array(self.side), "side_confidence": np.float32(self.confidence),
             "side_decided_by": np.array(self.decided_by)}
        if self.evidence is not None:
            d.update(side_label=np.array(self.evidence.label),
                     side_label_confidence=np.float32(self.evidence.label_confidence))
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
       check's when there is one, plus ±CHIRALITY_WEIGHT when the world and the image landmarks'
       chiralities agree in sign and are both at least CHIRALITY_MIN.
    3. A confident label (≥ CONFIDENT_LABEL) is kept whatever the sum says (its confidence is then the
       sum's P of the label's side, below 0.5 when the rest disagrees: a hand worth a look); otherwise
       the sign of the sum is the side. `decided_by` names what set it: 'label', or — where the side
       differs from the label — 'mirror-check' when the averaged label alone already disagrees with
       the label, else 'chirality'.
    """
    if forced is not None and forced != "auto":
        return SideDecision(check_side(forced), 1.0, "forced", ev)
    pr_label = p_right(ev.label, ev.label_confidence)
    pr = pr_label if ev.mirror_p_right is None else 0.5 * (pr_label + float(ev.mirror_p_right))
    w, i = _sign(ev.world_chirality), _sign(ev.image_chirality)
    chir = w if w == i else 0
    score = _logit(pr) + CHIRALITY_WEIGHT * chir
    if ev.label_confidence >= CONFIDENT_LABEL or score == 0:
        side = ev.label
    else:
        side = "right" if score > 0 else "left"
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
                 mirror_check: bool = True) -> list[SideDecision]:
    """Side decisions for the detections of one RGB image. The mirror check runs `detector` once more on
    the mirrored image (~25-80 ms on this CPU), only when some hand's label is below CONFIDENT_LABEL (a
    confident label is kept anyway) and not when `forced` or `mirror_check=False`; hands it does not
    find go on without it."""
    if forced is not None and forced != "auto":
        return [decide_side(SideEvidence.from_detection(d), forced) for d in dets]
    mirrors: list = [None] * len(dets)
    unsure = [d for d in dets if d.extra.get("label", (d.handedness, d.score))[1] < CONFIDENT_LABEL]
    if mirror_check and unsure:
        from core.errors import NoHandError

        try:
            found = detector.detect(np.ascontiguousarray(np.asarray(image)[:, ::-1]))
        except NoHandError:
            found = []
        mirrors = match_mirrored(dets, found, np.asarray(image).shape[1])
    return [decide_side(SideEvidence.from_detection(d, m)) for d, m in zip(dets, mirrors)]


def apply_side(det, decision: SideDecision):
    """Set a detection's side (what the lifting mirrors by) and keep the decision in `det.extra["side"]`
    (the detector's own label and confidence stay in `det.extra["label"]`)."""
    det.extra.setdefault("label", (det.handedness, float(det.score)))
    det.handedness = decision.side
    det.extra["side"] = decision
    return det
