"""The hand's side (core/side.py, issue 28): the decision rules on constructed evidence, the chirality
sign on real hand-model joints, and MediaPipe end to end on the generated Anny right hand and its mirror."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.errors import InputError
from core.paths import SAMPLE_IMAGE
from core.side import (CHIRALITY_MIN, CONFIDENT_LABEL, VIEW_VOTE_WEIGHT, VIEWS, SideEvidence, View, ViewReadings,
                       chirality, decide_side, decide_sides, hand_crop_map, hand_view_crops, match_mirrored, other,
                       p_right, read_views, view_vote, views_log_odds)

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


def test_a_confident_label_is_overturned_only_when_mirror_check_and_views_both_disagree():
    d = decide_side(SideEvidence("right", 0.95, mirror_p_right=0.1, view_vote=-1.0))
    assert (d.side, d.decided_by) == ("left", "chirality") and d.confidence > 0.5
    # one of the two alone keeps the label, flagged by a confidence below ½
    for ev in (SideEvidence("right", 0.95, mirror_p_right=0.9, view_vote=-1.0),     # the mirror check agrees
               SideEvidence("right", 0.95, view_vote=-1.0),                         # no mirror reading
               SideEvidence("right", 0.95, mirror_p_right=0.1, view_vote=0.0,       # views split: the sum
                            view_log_odds=-4.0)):                                    # alone says left
        d = decide_side(ev)
        assert (d.side, d.decided_by) == ("right", "label") and d.confidence < 0.5, ev
    # the same evidence overturns an unsure label
    assert decide_side(SideEvidence("right", 0.8, mirror_p_right=0.9, view_vote=-1.0)).side == "left"
    # the older rule (no views) keeps a confident label whatever the rest says
    assert decide_side(SideEvidence("right", 0.95, mirror_p_right=0.1)).side == "right"


def test_the_views_handedness_joins_the_sum():
    # label 0.6 right (logit 0.41), no chirality vote: the views' handedness (0.5 × log-odds) decides
    assert decide_side(SideEvidence("right", 0.6, view_vote=0.0, view_log_odds=-4.0)).side == "left"
    assert decide_side(SideEvidence("right", 0.6, view_vote=0.0, view_log_odds=-0.5)).side == "right"
    r = ViewReadings(np.array([0.0, 1.0, 0.5, 0.9]), np.ones(4), np.zeros(4))   # clipped at ±4
    assert views_log_odds(r) == pytest.approx((-4 + 4 + 0 + np.log(9)) / 4)


def test_a_weak_or_split_view_vote_does_not_overturn_a_sure_label():
    # label 0.95 right (logit 2.9) vs 2 views net of 10 against: 8 × 0.2 = 1.6 < 2.9
    assert decide_side(SideEvidence("right", 0.95, view_vote=-0.2)).side == "right"
    # an unsure label follows the vote; the detector's chirality pair is not used once views vote
    d = decide_side(SideEvidence("right", 0.6, world_chirality=0.5, image_chirality=0.5, view_vote=-0.2))
    assert (d.side, d.decided_by) == ("left", "chirality")
    # a vote of 0 leaves the (mirror-averaged) label
    assert decide_side(SideEvidence("left", 0.55, mirror_p_right=0.3, view_vote=0.0)).side == "left"
    assert decide_side(SideEvidence("left", 0.55, mirror_p_right=0.9, view_vote=0.0)).decided_by == "mirror-check"


def test_view_vote_counts_signs_and_abstains_when_flat():
    r = ViewReadings(np.full(5, 0.5), np.ones(5), np.array([0.3, 0.2, -0.4, 0.5 * CHIRALITY_MIN, -0.05]))
    assert view_vote(r) == pytest.approx((1 + 1 - 1) / 5)
    assert view_vote(ViewReadings(np.zeros(0), np.zeros(0), np.zeros(0))) == 0.0
    assert view_vote(r, min_chirality=0.0) == pytest.approx((1 + 1 - 1 + 1 - 1) / 5)


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
               SideEvidence("left", 0.55, -0.05, 0.4, None), SideEvidence("right", 0.8, -0.2, -0.3, None),
               SideEvidence("right", 0.95, 0.2, 0.3, 0.8, -0.6), SideEvidence("left", 0.7, 0.2, 0.3, None, 0.1)]:
        flipped = SideEvidence(other(ev.label), ev.label_confidence, -ev.world_chirality, -ev.image_chirality,
                               None if ev.mirror_p_right is None else 1 - ev.mirror_p_right,
                               None if ev.view_vote is None else -ev.view_vote)
        a, b = decide_side(ev), decide_side(flipped)
        assert a.side == other(b.side) and a.confidence == pytest.approx(b.confidence)


def test_p_right_and_npz_keys():
    assert p_right("right", 0.8) == pytest.approx(0.8) and p_right("left", 0.8) == pytest.approx(0.2)
    d = decide_side(SideEvidence("left", 0.6, mirror_p_right=0.9))
    keys = d.npz()
    assert str(keys["side"]) == d.side == "right" and str(keys["side_decided_by"]) == "mirror-check"
    assert str(keys["side_label"]) == "left" and float(keys["side_confidence"]) == pytest.approx(d.confidence)
    assert "side_view_vote" not in keys
    assert float(decide_side(SideEvidence("left", 0.6, view_vote=0.4)).npz()["side_view_vote"]) == pytest.approx(0.4)
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


# --- the views' crops ----------------------------------------------------------------------------------

def _kp_in_crop(kp, view):
    A = np.vstack([hand_crop_map(kp, view), [0, 0, 1]])
    M = np.linalg.inv(A)[:2]
    return kp @ M[:, :2].T + M[:, 2]


def test_hand_crop_map_stands_the_hand_upright_turns_and_zooms(detector, hand_image):
    kp = detector.detect(hand_image)[0].keypoints2d
    up = _kp_in_crop(kp, View())
    assert up[0, 0] == pytest.approx(up[9, 0], abs=1e-6) and up[0, 1] > up[9, 1]    # wrist below, straight up
    assert (up >= -5).all() and (up <= 229).all()                                   # the hand is in the crop
    t = _kp_in_crop(kp, View(turn=15))
    d = t[9] - t[0]
    assert np.degrees(np.arctan2(abs(d[0]), -d[1])) == pytest.approx(15, abs=1e-6)
    z = _kp_in_crop(kp, View(zoom=1.25))
    assert np.linalg.norm(z[9] - z[0]) == pytest.approx(np.linalg.norm(up[9] - up[0]) / 1.25)


def test_a_mirrored_view_of_the_image_is_the_view_of_the_mirrored_image(detector, hand_image):
    """Turning +15° and flipping the crop = the −15° crop of the mirrored photo, flipped back: the views
    are one set under mirroring, so a mirrored photo gets the mirrored vote."""
    kp = detector.detect(hand_image)[0].keypoints2d
    w = hand_image.shape[1]
    mirrored = np.ascontiguousarray(hand_image[:, ::-1])
    kp_m = kp.copy()
    kp_m[:, 0] = w - kp[:, 0]           # MediaPipe's keypoints are continuous (x · width)
    a = hand_view_crops(hand_image, kp, [View(turn=15, mirrored=True)]).astype(float)
    b, off = hand_view_crops(mirrored, kp_m, [View(turn=-15), View(turn=-10)]).astype(float)
    assert np.abs(a[0] - b).mean() < 2.0 and np.abs(a[0] - b).mean() < 0.25 * np.abs(a[0] - off).mean()
    assert set(VIEWS) == {View(-v.turn, v.zoom, (-v.shift[0], v.shift[1]), not v.mirrored) for v in VIEWS}


# --- MediaPipe end to end -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def searcher():
    from core.hand_search import HandSearcher

    return HandSearcher(num_threads=1)


def test_the_views_vote_right_on_the_right_hand_and_left_on_its_mirror(detector, hand_image, searcher):
    kp = detector.detect(hand_image)[0].keypoints2d
    r = read_views(searcher, hand_image, kp, VIEWS)
    assert r.p_right.shape == r.presence.shape == r.chirality.shape == (len(VIEWS),)
    assert (r.presence > 0.5).all() and view_vote(r) >= 0.5 and r.p_right.mean() > 0.5
    mirrored = np.ascontiguousarray(hand_image[:, ::-1])
    m = read_views(searcher, mirrored, detector.detect(mirrored)[0].keypoints2d, VIEWS)
    assert view_vote(m) <= -0.5 and m.p_right.mean() < 0.5



def test_mirrored_image_gives_the_other_side(detector, hand_image, searcher):
    dets = detector.detect(hand_image)
    (d,) = decide_sides(detector, hand_image, dets[:1], searcher=searcher)
    mirrored = np.ascontiguousarray(hand_image[:, ::-1])
    mdets = detector.detect(mirrored)
    (m,) = decide_sides(detector, mirrored, mdets[:1], searcher=searcher)
    assert d.side == "right" and m.side == "left"
    assert d.confidence > 0.5 and m.confidence > 0.5
    # every piece of evidence is there: both chiralities, the mirror check, the views
    assert d.evidence.world_chirality is not None and d.evidence.image_chirality is not None
    assert d.evidence.mirror_p_right > 0.5 and d.evidence.view_vote > 0 and m.evidence.view_vote < 0


def test_a_wrong_label_is_fixed_and_the_checks_can_be_left_out(detector, hand_image, searcher):
    import copy

    (det,) = detector.detect(hand_image)[:1]
    assert det.score >= CONFIDENT_LABEL
    # the same hand with a wrong, confident label: the mirror check and the views outvote it
    wrong = copy.deepcopy(det)
    wrong.handedness, wrong.score = "left", 0.95
    (w,) = decide_sides(detector, hand_image, [wrong], searcher=searcher)
    assert w.evidence.mirror_p_right > 0.5 and w.evidence.view_vote > 0
    assert w.side == "right" and w.decided_by in ("mirror-check", "chirality")
    # without views (the older rule): a confident label is kept and the mirror check skipped...
    (k,) = decide_sides(detector, hand_image, [copy.deepcopy(wrong)], views=False)
    assert (k.side, k.evidence.mirror_p_right, k.evidence.view_vote) == ("left", None, None)
    # ...an unsure one is checked in the mirrored image
    wrong.score = 0.6
    (u,) = decide_sides(detector, hand_image, [copy.deepcopy(wrong)], views=False)
    assert (u.side, u.decided_by) == ("right", "mirror-check")
    (n,) = decide_sides(detector, hand_image, [copy.deepcopy(wrong)], mirror_check=False, searcher=searcher)
    assert n.evidence.mirror_p_right is None and n.evidence.view_vote is not None


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
    assert float(r["side_view_vote"]) > 0 and float(m["side_view_vote"]) < 0      # the views voted
    assert float(r["side_view_log_odds"]) > 0 > float(m["side_view_log_odds"])    # and read the handedness
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


# --- the evaluation reads recorded views the way decide_sides does ----------------------------------------

def test_eval_side_votes_with_the_views_of_the_rule():
    """`collect --views` records more views than VIEWS; `decisions` must take exactly VIEWS' readings."""
    from training.eval_side import collect_views, decisions, view_indices

    recorded = collect_views()
    idx = set(view_indices(VIEWS))
    assert len(idx) == len(VIEWS) and [recorded[i] for i in view_indices(VIEWS)] == list(VIEWS)
    ch = [-0.5 if i in idx else 0.5 for i in range(len(recorded))]     # only the rule's views say left
    row = {"label": "right", "conf": 0.95, "cw": 0.3, "ci": 0.3, "mirror_p_right": 0.1, "true": "left",
           "views": {"p": [0.5] * len(recorded), "pres": [1.0] * len(recorded), "ch": ch}}
    (d,) = decisions([row])
    assert (d.side, d.evidence.view_vote) == ("left", -1.0)
    (old,) = decisions([row], use_views=False)                        # the older rule keeps the label
    assert old.side == "right" and old.evidence.view_vote is None


def test_eval_side_rules_shipped_variant_is_the_core_rule():
    """`rules` re-implements the rule with knobs; with `SHIPPED` it must choose what `decide_side` does."""
    from training.eval_side import SHIPPED, alternative_side, collect_views, decisions, view_indices

    rng = np.random.default_rng(0)
    n_views = len(collect_views())
    rows = []
    for _ in range(400):
        label = "right" if rng.random() < 0.5 else "left"
        rows.append({"label": label, "conf": float(rng.uniform(0.5, 1.0)), "cw": 0.0, "ci": 0.0, "true": "left",
                     "mirror_p_right": None if rng.random() < 0.2 else float(rng.random()),
                     "views": {"p": rng.random(n_views).tolist(), "pres": [1.0] * n_views,
                               "ch": rng.uniform(-0.5, 0.5, n_views).tolist()}})
    idx = view_indices(VIEWS)
    assert [d.side for d in decisions(rows)] == [alternative_side(r, idx, **SHIPPED) for r in rows]
