"""The second hand finder (core/hand_search.py): the landmark model on crops, the box route, the merge.

Uses the shipped render of an Anny right hand (resources/samples/anny_right_256.jpg) and its projected
ground-truth keypoints (tests/data/anny_right_256_gt.npz), with PAD px of edge-replicated border added
left and below: in the 256-px render the wrist touches the bottom edge, and the search's verification
views (zoomed out, turned) then see the hand cut off, which fails them for this synthetic hand (found at
presence 0.96, dropped by the verification; docs/detection.md). Needs the MediaPipe bundle.
"""
from __future__ import annotations

import pathlib
import zipfile

import cv2
import numpy as np
import pytest

from core.errors import InputError, NoHandError, WeightsError
from core.hand_search import (HandSearcher, SearchConfig, find_hands, is_fragment, keypoint_distance,
                              is_union, merge_detections, views_agree)
from core.paths import SAMPLE_IMAGE

DATA = pathlib.Path(__file__).parent / "data"
PAD = 64
W = 256 + PAD   # the padded test image is W × W
#: The upright render's verification views reach presence 0.55-0.64 (second lowest of 4; turned by 90°,
#: 180° or 270° it reaches 0.85-0.90), below the default 0.8 chosen on real photos (docs/detection.md):
#: the tests that need the upright render found by the search alone use the earlier 0.6.
RENDER = SearchConfig(verify_threshold=0.6)


@pytest.fixture(scope="module")
def searcher():
    return HandSearcher(num_threads=1)


@pytest.fixture(scope="module")
def hand_image():
    rgb = cv2.cvtColor(cv2.imread(str(SAMPLE_IMAGE)), cv2.COLOR_BGR2RGB)
    return cv2.copyMakeBorder(rgb, 0, PAD, PAD, 0, cv2.BORDER_REPLICATE)


@pytest.fixture(scope="module")
def gt_kp():
    return np.asarray(np.load(DATA / "anny_right_256_gt.npz")["kp2d"], np.float64) + [PAD, 0.0]


@pytest.fixture(scope="module")
def palm(detector, hand_image):
    return detector.detect(hand_image)[0]


def test_search_finds_the_sample_hand_without_the_palm_detector(searcher, hand_image, palm, gt_kp):
    dets = searcher.search(hand_image, RENDER)
    assert len(dets) == 1
    d = dets[0]
    assert d.extra["source"] == "search" and d.extra["presence"] > 0.9
    assert d.handedness == "right"
    assert d.image_size == (W, W)
    # The keypoints agree with the palm detector's and with the projected ground truth.
    # (hand ~70 px; measured 13.5 px from the ground truth, the palm detector's 5 px: definitions differ)
    assert keypoint_distance(d.keypoints2d, palm.keypoints2d) < 15.0
    assert keypoint_distance(d.keypoints2d, gt_kp) < 16.0
    assert d.world_landmarks.shape == (21, 3) and np.all(np.isfinite(d.world_landmarks))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotation_search_finds_a_turned_hand(searcher, hand_image, gt_kp, k):
    """The sample turned by k×90° (counter-clockwise) is found, with the keypoints turned with it."""
    img = np.ascontiguousarray(np.rot90(hand_image, k))
    dets = searcher.search(img)
    assert len(dets) == 1
    kp = gt_kp.copy()
    for _ in range(k):   # np.rot90 (CCW) maps pixel (x, y) of a W-wide image to (y, W - x)
        kp = np.stack([kp[:, 1], W - kp[:, 0]], 1)
    assert keypoint_distance(dets[0].keypoints2d, kp) < 16.0
    assert dets[0].handedness == "right"


def test_a_box_around_the_hand_gives_landmarks_near_the_palm_detectors(searcher, hand_image, palm):
    kp = palm.keypoints2d
    box = [kp[:, 0].min(), kp[:, 1].min(), kp[:, 0].max(), kp[:, 1].max()]
    d = searcher.landmarks_in_box(hand_image, box)
    assert d.extra["source"] == "box"
    assert keypoint_distance(d.keypoints2d, kp) < 15.0
    # A loose box drawn upside down (x1 < x0) still works.
    loose = [box[2] + 20, box[3] + 10, box[0] - 15, box[1] - 25]
    assert keypoint_distance(searcher.landmarks_in_box(hand_image, loose).keypoints2d, kp) < 15.0


def test_a_box_on_the_turned_hand_picks_the_right_rotation(searcher, hand_image, palm):
    img = np.ascontiguousarray(np.rot90(hand_image, 2))
    kp = W - palm.keypoints2d          # 180°: (x, y) → (W - x, H - y)
    box = [kp[:, 0].min(), kp[:, 1].min(), kp[:, 0].max(), kp[:, 1].max()]
    d = searcher.landmarks_in_box(img, box)
    assert keypoint_distance(d.keypoints2d, kp) < 15.0


def test_a_box_without_a_hand_says_so(searcher, hand_image):
    with pytest.raises(NoHandError, match="no hand in the box"):
        searcher.landmarks_in_box(hand_image, [200, 10, 300, 110])


@pytest.mark.parametrize("fill", ["black", "grey", "noise"])
def test_no_hand_in_a_blank_image(searcher, fill):
    rng = np.random.default_rng(0)
    img = {"black": np.zeros((240, 320, 3), np.uint8), "grey": np.full((240, 320, 3), 128, np.uint8),
           "noise": rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)}[fill]
    assert searcher.search(img) == []
    with pytest.raises(NoHandError):
        find_hands(img, "search", searcher=searcher)


def test_find_hands_modes(searcher, detector, hand_image):
    palm = find_hands(hand_image, "palm", detector=detector, searcher=searcher)
    assert [d.extra["source"] for d in palm] == ["palm"]
    # auto, one hand wanted: the palm detector's hand, no search.
    n0 = searcher.evaluations
    auto = find_hands(hand_image, "auto", detector=detector, searcher=searcher)
    assert searcher.evaluations == n0 and [d.extra["source"] for d in auto] == ["palm"]
    # auto, all hands: the search runs and its copy of the same hand is merged away.
    every = find_hands(hand_image, "auto", want_all=True, detector=detector, searcher=searcher)
    assert searcher.evaluations > n0 and [d.extra["source"] for d in every] == ["palm"]
    search = find_hands(hand_image, "search", detector=detector, searcher=searcher)
    assert [d.extra["source"] for d in search] == ["search"]
    with pytest.raises(InputError, match="unknown detector"):
        find_hands(hand_image, "yolo", searcher=searcher)


def test_auto_falls_back_to_the_search_when_the_palm_detector_finds_nothing(searcher, detector, hand_image):
    """A hand filling the frame (the sample zoomed 3×) defeats the palm detector, not the search."""
    kp = detector.detect(hand_image)[0].keypoints2d
    c = (kp.min(0) + kp.max(0)) / 2
    half = (kp.max(0) - kp.min(0)).max() * 0.6
    M = np.array([[256 / (2 * half), 0, 128 - c[0] * 256 / (2 * half)],
                  [0, 256 / (2 * half), 128 - c[1] * 256 / (2 * half)]])
    zoomed = cv2.warpAffine(hand_image, M, (256, 256), borderMode=cv2.BORDER_REPLICATE)
    try:
        palm_found = detector.detect(zoomed)
    except NoHandError:
        palm_found = []
    auto = find_hands(zoomed, "auto", detector=detector, searcher=searcher)
    assert len(auto) == 1
    expected = "palm" if palm_found else "search"
    assert auto[0].extra["source"] == expected
    want = kp @ M[:, :2].T + M[:, 2]
    assert keypoint_distance(auto[0].keypoints2d, want) < 0.1 * 256


def test_merge_keeps_distinct_hands_and_drops_copies_and_fragments(searcher, hand_image, palm):
    s = searcher.search(hand_image, RENDER)[0]
    assert merge_detections([palm], [s]) == [palm]
    # A distinct hand elsewhere (the same keypoints moved by 200 px) is kept.
    import copy

    other = copy.deepcopy(s)
    other.keypoints2d = s.keypoints2d + [200.0, -100.0]
    assert len(merge_detections([palm], [other])) == 2
    # A hand one third the size inside the palm hand is a fragment.
    frag = copy.deepcopy(s)
    centre = palm.keypoints2d.mean(0)
    frag.keypoints2d = centre + (s.keypoints2d - s.keypoints2d.mean(0)) / 3
    assert is_fragment(frag.keypoints2d, palm.keypoints2d)
    assert merge_detections([palm], [frag]) == [palm]


def test_bad_inputs_give_one_line_errors(searcher, hand_image, tmp_path):
    with pytest.raises(InputError, match="RGB image"):
        searcher.search(np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        searcher.search(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(InputError, match="box"):
        searcher.landmarks_in_box(hand_image, [1, 2, 3])
    with pytest.raises(InputError, match="too small"):
        searcher.landmarks_in_box(hand_image, [10, 10, 11, 11])
    with pytest.raises(WeightsError, match="missing"):
        HandSearcher(tmp_path / "nope.task")
    bad = tmp_path / "bad.task"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("hand_detector.tflite", b"x")
    with pytest.raises(WeightsError, match="hand_landmarks_detector"):
        HandSearcher(bad)


def test_a_hand_twice_the_frame_is_found_by_the_crops_bigger_than_the_image(searcher, hand_image, gt_kp):
    """A hand that fills the frame and runs past its edges (a close-up) fits no crop of the image: the model
    wants the hand at about half its input. Crops 1.5 and 2 × the image's shorter side (zero outside) are
    for such hands; without them the search finds nothing here."""
    n = 224
    c, side = (gt_kp.min(0) + gt_kp.max(0)) / 2, np.ptp(gt_kp, 0).max() / 2.0    # the hand is 2 × the frame
    A = np.array([[n / side, 0, n / 2 - c[0] * n / side], [0, n / side, n / 2 - c[1] * n / side]])
    close_up = cv2.warpAffine(hand_image, A, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    truth = gt_kp * n / side + A[:, 2]
    (d,) = searcher.search(close_up, RENDER)
    assert keypoint_distance(d.keypoints2d, truth) < 0.15 * np.ptp(truth, 0).max()
    assert searcher.search(close_up, SearchConfig(verify_threshold=0.6, scales=(1.0, 0.5, 0.25))) == []


def test_config_scales_change_the_work(searcher, hand_image):
    n0 = searcher.evaluations
    searcher.search(hand_image, SearchConfig(scales=(1.0,), rotations=(0,)))
    one = searcher.evaluations - n0
    n0 = searcher.evaluations
    searcher.search(hand_image, SearchConfig(scales=(1.0, 0.5), rotations=(0, 1, 2, 3)))
    assert searcher.evaluations - n0 > 4 * one


def test_infer_cli_detector_flag(tmp_path, hand_image, gt_kp):
    """`pose-viewer infer --detector search` runs the crop search (a hand turned upside down) and
    `--detector palm` on a blank image fails with the palm detector's one-line error."""
    from core.cli import main

    img = tmp_path / "turned.png"
    cv2.imwrite(str(img), cv2.cvtColor(np.ascontiguousarray(np.rot90(hand_image, 2)), cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    assert main(["infer", str(img), "--out", str(out), "-n", "2", "--steps", "1", "--stage", "1",
                 "--detector", "search", "--device", "cpu"]) == 0
    res = np.load(out / "turned" / "result.npz")
    assert keypoint_distance(res["keypoints2d"], W - gt_kp) < 16.0
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((64, 64, 3), 90, np.uint8))
    assert main(["infer", str(blank), "--out", str(out), "-n", "2", "--steps", "1", "--stage", "1",
                 "--detector", "auto", "--device", "cpu"]) != 0


def test_merge_pairs_each_primary_hand_with_one_hand_of_the_other_finder(searcher, hand_image, palm):
    """One hand in front of another: both finders' boxes overlap the primary hand, but the primary hand
    stands for one of them only (the nearer); the other is a second hand and is kept."""
    import copy

    kp = palm.keypoints2d
    copy_of_palm = copy.deepcopy(palm)
    copy_of_palm.keypoints2d = kp + 2.0
    behind = copy.deepcopy(palm)   # the same hand turned 180° about its box centre: same box, other keypoints
    c = (kp.min(0) + kp.max(0)) / 2
    behind.keypoints2d = 2 * c - kp
    assert not is_fragment(behind.keypoints2d, kp)
    merged = merge_detections([palm], [copy_of_palm, behind])
    assert len(merged) == 2 and merged[0] is palm or merged[1] is palm
    assert any(d is behind for d in merged) and not any(d is copy_of_palm for d in merged)
    # Alone, the turned hand is taken for the primary hand (its box is the primary's).
    assert merge_detections([palm], [behind]) == [palm]


def test_verification_rule_lets_one_view_fail_either_way():
    assert views_agree([0.9, 0.9, 0.9, 0.9], [0.1, 0.1, 0.1, 0.1], 0.6, 0.25)
    assert views_agree([0.9, 0.2, 0.9, 0.9], [0.1, 0.1, 0.1, 0.1], 0.6, 0.25)    # one view sees no hand
    assert views_agree([0.9, 0.9, 0.9, 0.9], [0.1, 0.1, 0.9, 0.1], 0.6, 0.25)    # one view moves away
    assert not views_agree([0.9, 0.2, 0.9, 0.9], [0.1, 0.1, 0.9, 0.1], 0.6, 0.25)
    assert not views_agree([0.5, 0.5, 0.9, 0.9], [0.1, 0.1, 0.1, 0.1], 0.6, 0.25)


@pytest.fixture(scope="module")
def small_hand_scene(hand_image, gt_kp):
    """The sample hand shrunk to a 200-px square (hand ~55 px) in a 1000 × 800 canvas of its background
    colour: (image, ground-truth keypoints)."""
    side, x0, y0 = 200, 700, 500
    canvas = np.empty((800, 1000, 3), np.uint8)
    canvas[:] = hand_image[5, W - 5]
    canvas[y0:y0 + side, x0:x0 + side] = cv2.resize(hand_image, (side, side), interpolation=cv2.INTER_AREA)
    return canvas, gt_kp * side / W + [x0, y0]


def test_palm_detector_tiles_find_a_small_hand_the_grid_misses(searcher, detector, small_hand_scene):
    img, kp = small_hand_scene
    assert searcher.search(img, SearchConfig(palm_tiles=()), detector=detector) == []
    dets = searcher.search(img, detector=detector)
    assert len(dets) == 1 and dets[0].extra["source"] == "search"
    assert keypoint_distance(dets[0].keypoints2d, kp) < 0.15 * 55
    # Without a detector there are no tiles (the grid alone).
    assert searcher.search(img) == []


def test_two_hands_side_by_side_are_both_found(searcher, detector, hand_image):
    """The sample and its mirror image next to each other: a right and a left hand."""
    img = np.ascontiguousarray(np.concatenate([hand_image, hand_image[:, ::-1]], 1))
    dets = searcher.search(img, detector=detector)
    assert len(dets) == 2
    assert sorted(d.handedness for d in dets) == ["left", "right"]
    xs = sorted(d.keypoints2d[:, 0].mean() for d in dets)
    assert xs[0] < W < xs[1]



def test_merge_drops_a_hand_straddling_two_primary_hands(palm):
    """Two hands side by side (a heart gesture) and a "hand" whose box holds most of both."""
    import copy

    kp = palm.keypoints2d
    width = np.ptp(kp[:, 0])
    a, b = copy.deepcopy(palm), copy.deepcopy(palm)
    b.keypoints2d = kp + [width + 10.0, 0.0]
    centre = (kp.mean(0) + b.keypoints2d.mean(0)) / 2
    straddle = copy.deepcopy(palm)
    straddle.keypoints2d = centre + (kp - kp.mean(0)) * [2.6, 1.3]
    assert is_union(straddle.keypoints2d, [a.keypoints2d, b.keypoints2d])
    assert not is_union(a.keypoints2d, [b.keypoints2d, straddle.keypoints2d])
    merged = merge_detections([a, b], [straddle])
    assert len(merged) == 2 and not any(d is straddle for d in merged)
    # Next to one hand only, the same "hand" is a hand of its own.
    assert not is_union(straddle.keypoints2d, [a.keypoints2d])
    assert len(merge_detections([a], [straddle])) == 2
