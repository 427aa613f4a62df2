"""Joints of a hand with a FIXED shape, with the shape-dependent rest model computed once.

Optimisation loops call the hand model's joints path hundreds of times; for the Anny hand most of a
forward/backward goes to the phenotype blendshapes of the rest model, which do not change while the
shape is held. `FixedShapeJoints` caches them (detached) and replays only the pose-dependent part of
`AnnyHand._canonical` (bone transforms + the sparse skinning of the five tip vertices). Other hand
models fall back to `hand.joints`. `tests/test_prior.py` checks it against `hand.joints`.
"""
from __future__ import annotations

import torch

from core.geometry import axis_angle_to_matrix


class FixedShapeJoints:
    def __init__(self, hand, shape: torch.Tensor, batch: int) -> None:
        self.hand = hand
        shape = torch.as_tensor(shape, dtype=torch.float32).detach()
        if shape.ndim == 1:
            shape = shape[None]
        self.shape = shape.expand(batch, -1).contiguous()
        self.fast = hasattr(hand, "anny") and hasattr(hand, "_blend_coeffs")
        if self.fast:
            from core.hand.anny_hand import TIP_VERTICES

            with torch.no_grad():
                rest = hand.anny.get_rest_model(hand._blend_coeffs(self.shape))
            self.rest_bone_poses = rest["rest_bone_poses"].detach()
            tips = rest["rest_vertices"][:, list(TIP_VERTICES)].detach()
            if tips.shape[0] != batch:
                tips = tips.expand(batch, -1, -1)
            self.tips_h = torch.cat([tips, torch.ones_like(tips[..., :1])], -1)  # (B,5,4)

    def __call__(self, global_orient: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        h = self.hand
        if not self.fast:
            return h.joints(global_orient, pose, self.shape)
        return self._joints(global_orient, pose, self.rest_bone_poses, self.tips_h)

    @staticmethod
    def shared_shape_joints(hand, global_orient: torch.Tensor, pose: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        """Joints of B poses of ONE hand shape (1, S), differentiable in the shape: the rest model is
        computed once for the shared shape instead of once per hypothesis."""
        if not (hasattr(hand, "anny") and hasattr(hand, "_blend_coeffs")):
            return hand.joints(global_orient, pose, shape.expand(pose.shape[0], -1))
        from core.hand.anny_hand import TIP_VERTICES

        b = pose.shape[0]
        rest = hand.anny.get_rest_model(hand._blend_coeffs(shape.reshape(1, -1)))
        tips = rest["rest_vertices"][:, list(TIP_VERTICES)].expand(b, -1, -1)
        tips_h = torch.cat([tips, torch.ones_like(tips[..., :1])], -1)
        return FixedShapeJoints._joints_impl(hand, global_orient, pose, rest["rest_bone_poses"], tips_h)

    def _joints(self, global_orient, pose, rest_bone_poses, tips_h):
        return self._joints_impl(self.hand, global_orient, pose, rest_bone_poses, tips_h)

    @staticmethod
    def _joints_impl(h, global_orient, pose, rest_bone_poses, tips_h):
        b = pose.shape[0]
        transforms, bone_poses = h.anny.get_bone_transforms(h._deltas(pose), rest_bone_poses)
        if transforms.shape[0] != b:
            transforms = transforms.expand(b, -1, -1, -1)
            bone_poses = bone_poses.expand(b, -1, -1, -1)
        t = transforms[:, :, :3, :]
        t_sel = t[torch.arange(b)[:, None, None], h._tip_i[None]]                 # (B,5,K,3,4)
        moved = (t_sel @ tips_h[:b, :, None, :, None]).squeeze(-1)               # (B,5,K,3)
        tips = (moved * h._tip_w[None, :, :, None]).sum(2)
        joints, _ = h.keypoints(bone_poses, tips, rest_bone_poses)
        if global_orient is not None:
            rot = axis_angle_to_matrix(global_orient.reshape(-1, 3)).expand(b, 3, 3)
            joints = joints @ rot.transpose(1, 2)
        return joints
