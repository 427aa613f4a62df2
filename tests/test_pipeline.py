"""The one image pipeline (core/pipeline.py): the real detector and the shipped stage-1 lifter on the sample
photo, with and without a (tiny, random) mesh stage; one result interface for both."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from core.errors import InputError, WeightsError
from core.joints import mirror_x
from core.paths import MODELS_DIR, SAMPLE_IMAGE
from core.pipeline import KIND_CASCADE, KIND_STAGE1, HandResult, ImagePipeline
from core.stage1 import JointLifter, Stage1Estimator
from tests.test_cascade import tiny_mesh_stage

N, STEPS = 6, 3


@pytest.fixture(scope="module")
def stage1():
    return Stage1Estimator(lifter=JointLifter.from_weights("cpu"))


@pytest.fixture(scope="module")
def mesh_stage():
    return tiny_mesh_stage()


@pytest.fixture(scope="module")
def image():
    return cv2.cvtColor(cv2.imread(str(SAMPLE_IMAGE)), cv2.COLOR_BGR2RGB)


def test_joints_only_and_mesh_results_share_one_interface(stage1, mesh_stage, image):
    joints_only = ImagePipeline(stage1)
    cascade = ImagePipeline(stage1, mesh_stage)
    assert (joints_only.kind, cascade.kind) == (KIND_STAGE1, KIND_CASCADE)
    (a,) = joints_only.run(image, n=N, steps=STEPS, seed=2)
    (b,) = cascade.run(image, n=N, steps=STEPS, seed=2)
    assert isinstance(a, HandResult) and isinstance(b, HandResult)
    np.testing.assert_array_equal(a.joint_hypotheses, b.joint_hypotheses)   # the same stage 1
    assert a.handedness == b.handedness == "right" and a.keypoints2d.shape == (21, 2)
    # joints only: every mesh field is None, the skeleton is stage 1's, result.npz has no mesh keys
    assert not a.has_mesh and a.stage == 1
    assert a.vertex_hypotheses is None and a.vertices is None and a.faces is None and a.mesh_cam_t is None
    np.testing.assert_array_equal(a.aggregate_joints, a.joints)
    da = a.to_npz_dict()
    assert da["stage"] == 1 and "vertices" not in da and da["joint_hypotheses"].shape == (N, 21, 3)
    # meshes: same names filled in
    assert b.has_mesh and b.stage == 2
    assert b.vertex_hypotheses.shape == (N, 1609, 3) and b.vertices.shape == (1609, 3)
    np.testing.assert_array_equal(b.aggregate_joints, b.mesh_joints)
    db = b.to_npz_dict()
    assert db["stage"] == 2 and db["vertex_hypotheses"].shape == (N, 1609, 3)
    assert {"features_s", "ldm_s", "decode_s", "stage2_s", "stage1_lift_s", "stage1_detect_s"} <= set(b.timings)
    # the trajectory is decoded on request only, into the photo's axes
    assert b.mesh_trajectory_vertices is None and joints_only.decode_trajectory(a) is None
    traj = cascade.decode_trajectory(b)
    assert traj.shape == (STEPS, N, 1609, 3) and b.mesh_trajectory_vertices is traj
    np.testing.assert_allclose(traj[-1], b.vertex_hypotheses, atol=1e-4)    # the last x̂0 is the result


def test_every_hand_in_one_call_with_progress_and_stages(stage1, mesh_stage, image):
    pipe = ImagePipeline(stage1, mesh_stage)
    (det,) = pipe.detect(image)
    w = image.shape[1]
    left = cv2.flip(image, 1)   # the photo mirrored: its hand is a left hand where the right one was mirrored to
    (det_left,) = pipe.detect(left)
    assert det_left.handedness == "left"
    both = np.concatenate([image, left], 1)            # one photo, two hands
    det_left.keypoints2d = det_left.keypoints2d + [w, 0]
    for batch, total, order in ((False, 2 * (STEPS + STEPS), ["joints", "meshes", "joints", "meshes"]),
                                (True, STEPS + STEPS, ["joints", "meshes"])):   # batched: one pass per stage
        seen, stages = [], []
        results = pipe.estimate(both, [det, det_left], n=N, steps=STEPS, seed=1, batch=batch,
                                progress=lambda d, t: seen.append((d, t)), on_stage=stages.append)
        assert [r.handedness for r in results] == ["right", "left"]
        assert seen == [(i, total) for i in range(1, total + 1)]
        assert stages == order
    right, lft = results
    np.testing.assert_array_equal(lft.faces, right.faces[:, ::-1])            # mirrored winding
    # a left hand's decoded trajectory is mirrored back like its meshes
    traj = pipe.decode_trajectory(lft)
    np.testing.assert_allclose(traj[-1], lft.vertex_hypotheses, atol=1e-4)
    assert not np.allclose(traj[-1], mirror_x(lft.vertex_hypotheses), atol=1e-4)


def test_options_outside_what_is_built_are_one_line_errors(stage1, image):
    pipe = ImagePipeline(stage1)
    for kw, word in (({"detector": "sonar"}, "must be one of"),
                     ({"side": "up"}, "must be one of"),
                     ({"hand": "middle"}, "must be one of")):
        with pytest.raises(InputError, match=word):
            pipe.run(image, n=2, steps=1, **kw)
    with pytest.raises(InputError, match="RGB"):
        pipe.run(image[..., 0], n=2, steps=1)


def test_load_falls_back_to_joints_only_and_says_why(tmp_path):
    """Without the stage-2 weights the pipeline runs stage 1 and says which file is missing; asked for
    meshes explicitly, it raises WeightsError."""
    for f in MODELS_DIR.iterdir():
        if not f.name.startswith(("mesh_ldm", "mesh_ae", "image_encoder")):
            shutil.copy(f, tmp_path / f.name)
    pipe = ImagePipeline.load("cpu", models_dir=tmp_path)
    assert pipe.kind == KIND_STAGE1 and "mesh_ldm" in pipe.note and not pipe.has_mesh
    with pytest.raises(WeightsError, match="mesh_ldm"):
        ImagePipeline.load("cpu", mesh=True, models_dir=tmp_path)
    assert ImagePipeline.load("cpu", mesh=False, models_dir=tmp_path).note == ""
