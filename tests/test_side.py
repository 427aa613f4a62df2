"""The hand's side (core/side.py, issue 28): the decision rules on constructed evidence, the chirality
sign on real hand-model joints, and MediaPipe end to end on the generated Anny right hand and its mirror."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.errors import InputError
from core.paths import SAMPLE_IMAGE
from core.side import (CHIRALITY_MIN, CONFIDENT_LABEL, SideEvidence, chirality, decide_side, decide_sides,
                       match_mirrored, other, p_right)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# --- rules on constructed evidence --------------------------------------------------------------------

def test_confident_label_is_kept_against_all_other_evidence():
    ev = SideEvidence("right", CONFIDENT_LABEL, world_chirality=-0.9, image_chirality=-0.9, mirror_p_right=0.0)
    d = decide_side(ev)
    assert d.side == "right" and d.decided_by == "label"
    assert d.confidence < 0.5          # the rest disagrees: flagged by a low confidence, not flipped


def test_unsure_label_is_overridden_by_the_mirror_check():
    ev = SideEvidence("right", 0.6, mirror_p_right=0.05)
    d = decide_side(ev)
    assert (d.side, d.decided_by) == ("left", "mirror-check")
    assert 0.5 < d.confidence < 1
    # a mirror check that agrees keeps the label
    assert decide_side(SideEvidence("right", 0.6, mirror_p_right=0.9)).side == "right"


def test_agreeing_chiralities_override_an_unsure_label_without_mirror_check():
    d = decide_side(SideEvidence("right", 0.7, world_chirality=-0.3, image_chirality=-0.2))
    assert (d.side, d.decided_by) == ("left", "chirality")
    # they must agree: one against the other is no vote
    assert decide_side(SideEvidence("right", 0.7, world_chirality=-0.3, image_chirality=0.3)).side == "right"
    # and be strong enough: a near-flat palm's sign is noise
    weak = -0.5 * CHIRALITY_MIN
    assert decide_side(SideEvidence("right", 0.7, world_chirality=weak, image_chirality=weak)).side == "right"
    # a missing one is no vote either
    assert decide_side(SideEvidence("right", 0.7, world_chirality=-0.3)).side == "right"


def test_chirality_does_not_beat_a_fairly_sure_averaged_label():
    """Label 0.85 right and the mirror check 0.95 right: average 0.9 right (logit 2.2) > the chirality weight."""
    d = decide_side(SideEvidence("right", 0.85, world_chirality=-0.5, image_chirality=-0.5, mirror_p_right=0.95))
    assert d.side == "right"


def test_forced_side_wins_and_is_checked():
    ev = SideEvidence("right", 0.99, world_chirality=0.5, image_chirality=0.5, mirror_p_right=1.0)
    d = decide_side(ev, forced="left")
    assert (d.side, d.confidence, d.decided_by) == ("left", 1.0, "forced")
    assert decide_side(ev, forced="auto").side == "right"
    with pytest.raises(InputError):
        decide_side(ev, forced="up")


def test_mirrored_evidence_gives_the_mirrored_decision():
    """Every reading flipped (what a mirrored image gives) → the other side, same confidence."""
    for ev in [SideEvidence("right", 0.6, 0.2, 0.3, 0.1), SideEvidence("left", 0.95, 0.2, 0.3, 0.4),
               SideEvidence("left", 0.55, -0.05, 0.4, None), SideEvidence("right", 0.8, -0.2, -0.3, None)]:
        flipped = SideEvidence(other(ev.label), ev.label_confidence, -ev.world_chirality, -ev.image_chirality,
                               None if ev.mirror_p_right is None else 1 - ev.mirror_p_right)
        a, b = decide_side(ev), decide_side(flipped)
        assert a.side == other(b.side) and a.confidence == pytest.approx(b.confidence)


def test_p_right_and_npz_keys():
    assert p_right("right", 0.8) == pytest.approx(0.8) and p_right("left", 0.8) == pytest.approx(0.2)
    d = decide_side(SideEvidence("left", 0.6, mirror_p_right=0.9))
    keys = d.npz()
    assert str(keys["side"]) == d.side == "right" and str(keys["side_decided_by"]) == "mirror-check"
    assert str(keys["side_label"]) == "left" and float(keys["side_confidence"]) == pytest.approx(d.confidence)
    assert d.describe() == f"right hand, {100 * d.confidence:.0f} % (mirror check)"
    assert decide_side(SideEvidence("left", 0.6), forced="right").describe() == "right hand (forced)"


# --- chirality on the hand model ----------------------------------------------------------------------

def test_chirality_is_positive_for_right_hand_joints_and_negative_mirrored():
    gt = np.load(pytest.importorskip("pathlib").Path(__file__).parent / "data" / "anny_right_256_gt.npz")
    j = gt["joints_cam"]
    assert chirality(j) > CHIRALITY_MIN
    m = j.copy()
    m[:, 0] *= -1
    assert chirality(m) == pytest.approx(-chirality(j))
    R = cv2.Rodrigues(np.array([0.3, -1.2, 2.0]))[0]     # any rotation keeps it
    assert chirality(j @ R.T) == pytest.approx(chirality(j))
    assert chirality(np.zeros((21, 3))) == 0.0 and chirality(np.zeros((20, 3))) == 0.0


# --- MediaPipe end to end -----------------------------------------------------------------------------



def test_mirrored_image_gives_the_other_side(detector, hand_image):
    dets = detector.detect(hand_image)
    (d,) = decide_sides(detector, hand_image, dets[:1])
    mirrored = np.ascontiguousarray(hand_image[:, ::-1])
    mdets = detector.detect(mirrored)
    (m,) = decide_sides(detector, mirrored, mdets[:1])
    assert d.side == "right" and m.side == "left"
    assert d.confidence > 0.5 and m.confidence > 0.5
    # the detector keeps the landmarks' depth, so both chiralities are there
    assert d.evidence.world_chirality is not None and d.evidence.image_chirality is not None


def test_mirror_check_runs_for_unsure_labels_only(detector, hand_image):
    import copy

    (det,) = detector.detect(hand_image)[:1]
    assert det.score >= CONFIDENT_LABEL            # the sample's label is sure: no second detector call
    (d,) = decide_sides(detector, hand_image, [copy.deepcopy(det)])
    assert d.evidence.mirror_p_right is None and d.side == "right"
    # the same hand with a wrong, unsure label: the mirror check reads the mirrored image and fixes it
    wrong = copy.deepcopy(det)
    wrong.handedness, wrong.score = "left", 0.6
    (w,) = decide_sides(detector, hand_image, [wrong])
    assert w.evidence.mirror_p_right is not None and w.evidence.mirror_p_right > 0.5
    assert (w.side, w.decided_by) == ("right", "mirror-check")
    (n,) = decide_sides(detector, hand_image, [copy.deepcopy(wrong)], mirror_check=False)
    assert n.evidence.mirror_p_right is None


def test_forced_side_is_respected(detector, hand_image):
    dets = detector.detect(hand_image)
    (d,) = decide_sides(detector, hand_image, dets[:1], forced="left")
    assert (d.side, d.decided_by) == ("left", "forced")


def test_match_mirrored_pairs_the_same_hand(detector, hand_image):
    dets = detector.detect(hand_image)
    mirrored = np.ascontiguousarray(hand_image[:, ::-1])
    mdets = detector.detect(mirrored)
    assert match_mirrored(dets[:1], mdets, hand_image.shape[1])[0] is mdets[0]
    # a hand elsewhere does not match
    far = [type(mdets[0])(**{**mdets[0].__dict__, "keypoints2d": mdets[0].keypoints2d + 100})]
    assert match_mirrored(dets[:1], far, hand_image.shape[1]) == [None]


# --- the pipeline and `pose-viewer infer --side` ------------------------------------------------------

def _infer(tmp_path, image, *opts):
    from core.cli import main

    out = tmp_path / "out"
    assert main(["infer", str(image), "--out", str(out), "-n", "4", "--steps", "2", "--stage", "1", *opts]) == 0
    return np.load(out / image.stem / "result.npz")


@pytest.fixture(scope="module")
def mirrored_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("side") / "mirrored.png"
    cv2.imwrite(str(path), cv2.imread(str(SAMPLE_IMAGE))[:, ::-1])
    return path


def test_infer_records_the_decision_and_a_mirrored_image_gives_the_other_side(tmp_path, mirrored_file):
    r = _infer(tmp_path / "a", SAMPLE_IMAGE)
    m = _infer(tmp_path / "b", mirrored_file)
    assert str(r["side"]) == str(r["handedness"]) == "right"
    assert str(m["side"]) == str(m["handedness"]) == "left"
    for z in (r, m):
        assert 0.5 < float(z["side_confidence"]) <= 1
        assert str(z["side_decided_by"]) in ("label", "mirror-check", "chirality")
        assert str(z["side_label"]) in ("left", "right")
    # the joints are mirrored with the side: the left result is (about) the right one mirrored
    assert np.sign(chirality(r["joints"])) == 1 and np.sign(chirality(m["joints"])) == -1


@pytest.mark.parametrize("forced", ["left", "right"])
def test_infer_side_flag_is_respected(tmp_path, mirrored_file, forced):
    for image in (SAMPLE_IMAGE, mirrored_file):
        z = _infer(tmp_path / image.stem, image, "--side", forced)
        assert str(z["side"]) == str(z["handedness"]) == forced and str(z["side_decided_by"]) == "forced"
        assert float(z["side_confidence"]) == 1.0
        assert np.sign(chirality(z["joints"])) == (1 if forced == "right" else -1)   # lifted as that side


def test_infer_side_flag_rejects_other_values(tmp_path, capsys):
    from core.cli import main

    with pytest.raises(SystemExit):
        main(["infer", str(SAMPLE_IMAGE), "--out", str(tmp_path), "--side", "up"])
    assert "--side" in capsys.readouterr().err
