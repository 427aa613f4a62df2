import numpy as np
import pytest
import torch

from core.hand.anny_hand import TIP_VERTICES, find_tip_vertices
from core.hand.pose_layout import POSE_DIM, pose_dims_moving_joint
from core.joints import FINGERTIPS, mirror_x


def test_shapes_and_faces(anny_hand):
    out = anny_hand(torch.zeros(2, 3), torch.zeros(2, POSE_DIM))
    assert out.vertices.shape == (2, 1609, 3)
    assert out.joints.shape == (2, 21, 3)
    assert anny_hand.faces.shape[1] == 3 and anny_hand.faces.max() < 1609


def test_wrist_at_origin_and_hand_size(anny_hand):
    j = anny_hand.joints()[0].numpy()
    assert np.allclose(j[0], 0, atol=1e-6)
    length = np.linalg.norm(j[12] - j[0])  # wrist → middle tip of an average adult: ~17-20 cm
    assert 0.14 < length < 0.22


def test_keypoints_follow_real_joint_positions(anny_hand):
    """Corrected wrist/MCP/CMC keypoints (KEYPOINT_CORRECTIONS): proximal phalanx / palm length in the
    range of real hands (docs/synthetic_data.md: real median 0.50 index, 0.60 middle; raw Anny bone
    heads give 0.25 and 0.31), and the corrections stay rigid when the fingers bend."""
    j = anny_hand.joints()[0].numpy()
    palm = np.linalg.norm(j[9] - j[0])
    assert 0.07 < palm < 0.09
    assert 0.38 < np.linalg.norm(j[6] - j[5]) / palm < 0.64
    assert 0.45 < np.linalg.norm(j[10] - j[9]) / palm < 0.75
    pose = torch.zeros(1, POSE_DIM)
    pose[0, pose_dims_moving_joint(6)] = 0.8  # bend the index PIP: palm keypoints do not move
    bent = anny_hand.joints(None, pose)[0].numpy()
    np.testing.assert_allclose(bent[[0, 1, 5, 9, 13, 17]], j[[0, 1, 5, 9, 13, 17]], atol=1e-6)


def test_tip_vertices_are_the_furthest_skin_points(anny_hand):
    assert list(TIP_VERTICES) == find_tip_vertices(anny_hand)
    out = anny_hand()
    assert torch.allclose(out.joints[0, list(FINGERTIPS)], out.vertices[0, list(TIP_VERTICES)])


def test_joints_only_path_matches_forward(anny_hand):
    g = torch.Generator().manual_seed(0)
    pose = torch.randn(5, POSE_DIM, generator=g) * 0.4
    orient = torch.randn(5, 3, generator=g)
    shape = torch.rand(5, anny_hand.shape_dim, generator=g)
    full = anny_hand(orient, pose, shape)
    fast = anny_hand.joints(orient, pose, shape)
    assert torch.allclose(full.joints, fast, atol=1e-5)


def test_global_orient_rotates_about_the_wrist(anny_hand):
    base = anny_hand.joints()[0]
    rotated = anny_hand.joints(torch.tensor([[0.0, 0.0, np.pi / 2]]))[0]
    assert torch.allclose(rotated[0], base[0], atol=1e-6)
    # 90° about z maps (x, y) → (−y, x)
    assert torch.allclose(rotated[12, 0], -base[12, 1], atol=1e-5)
    assert torch.allclose(rotated[12, 1], base[12, 0], atol=1e-5)


def test_positive_flexion_bends_the_finger_toward_the_palm(anny_hand):
    base = anny_hand.joints()[0]
    pose = torch.zeros(1, POSE_DIM)
    pose[0, pose_dims_moving_joint(6)[0]] = 1.0  # index MCP flexion (x axis)
    bent = anny_hand.joints(pose=pose)[0]
    palm_normal = torch.tensor([-1.0, 0.0, 0.0])  # palm faces −x in the canonical frame
    assert float((bent[8] - base[8]) @ palm_normal) > 0.03
    assert torch.allclose(bent[:6], base[:6], atol=1e-6)  # wrist, thumb and index MCP stay


def test_pose_dims_moving_joint_layout():
    assert pose_dims_moving_joint(0) == [] and pose_dims_moving_joint(5) == []
    assert pose_dims_moving_joint(2) == [0, 1, 2]      # thumb MCP moved by the thumb CMC bone
    assert pose_dims_moving_joint(8) == [15, 16, 17]   # index tip moved by the index distal bone
    dims = sorted(d for j in range(21) for d in pose_dims_moving_joint(j))
    assert dims == list(range(POSE_DIM))


def test_shape_changes_the_mesh_and_is_differentiable(anny_hand):
    shape = anny_hand.neutral_shape(1).clone().requires_grad_(True)
    pose = torch.zeros(1, POSE_DIM, requires_grad=True)
    j = anny_hand.joints(pose=pose, shape=shape)
    j[..., 1].sum().backward()
    assert shape.grad.abs().sum() > 0 and pose.grad.abs().sum() > 0
    bigger = anny_hand.neutral_shape(1).clone()
    bigger[0, 7] = 1.0  # hand scale
    assert anny_hand.joints(shape=bigger)[0, 12, 1] > anny_hand.joints()[0, 12, 1]


def test_bad_pose_size_is_a_clear_error(anny_hand):
    from core.hand.base import HandModelError

    with pytest.raises(HandModelError, match="45"):
        anny_hand(pose=torch.zeros(1, 44))


def test_mirroring_is_an_involution():
    pts = np.random.default_rng(0).normal(size=(21, 3)).astype(np.float32)
    assert np.allclose(mirror_x(mirror_x(pts)), pts)
    assert np.allclose(mirror_x(pts)[:, 1:], pts[:, 1:])


def test_autograd_works_after_an_inference_mode_forward():
    """A forward under torch.inference_mode (as the viewer does) must not poison later autograd use."""
    import roma.mappings

    from core.hand.anny_hand import AnnyHand

    roma.mappings._cached_horn_map.cache_clear()   # start as a fresh process would (roma's per-device cache)
    hand = AnnyHand()
    with torch.inference_mode():
        hand(torch.zeros(1, 3), torch.zeros(1, POSE_DIM), hand.neutral_shape(1).clone())
    shape = hand.neutral_shape(1).clone().requires_grad_(True)
    hand.joints(pose=torch.zeros(1, POSE_DIM), shape=shape).sum().backward()
    assert shape.grad is not None
