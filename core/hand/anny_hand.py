"""Anny hand (default model): `anny.Anny(rig='anny-hand.R', topology='hand.R')`, 1,609 vertices.

Canonical frame: wrist at the origin, fingers along +y at rest (Anny's own axes, metres).
Shape vector (10): the 6 Anny phenotypes (0..1, neutral 0.5) then 4 local hand changes
(−1..1, neutral 0): finger length, hand scale, finger diameter, finger distance.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from core.geometry import axis_angle_to_matrix
from core.hand.base import HandModel, HandModelError
from core.hand.pose_layout import ARTICULATED_BONES, POSE_DIM
from core.paths import anny_cache_dir

PHENOTYPES = ("gender", "age", "muscle", "weight", "height", "proportions")
LOCAL_CHANGES = ("r-hand-fingers-length-incr", "r-hand-scale-incr",
                 "r-hand-fingers-diameter-incr", "r-hand-fingers-distance-incr")
SHAPE_NAMES = PHENOTYPES + tuple(c.removeprefix("r-hand-").removesuffix("-incr") for c in LOCAL_CHANGES)
NEUTRAL_SHAPE = (0.5,) * len(PHENOTYPES) + (0.0,) * len(LOCAL_CHANGES)

#: Bones whose heads are the 21 keypoints (tips are vertices, see TIP_VERTICES); -1 marks a tip.
_KEYPOINT_BONES = ("wrist.R",) + tuple(
    name for k in range(1, 6) for name in (f"finger{k}-1.R", f"finger{k}-2.R", f"finger{k}-3.R", None)
)
#: Fingertip skin vertices (thumb → pinky): the vertex of `fingerk-3.R` furthest along the bone at
#: rest (found by `find_tip_vertices`, checked by tests/test_hand_anny.py).
TIP_VERTICES = (782, 29, 221, 416, 605)

#: Keypoint corrections (mm at the neutral shape, scaled with the palm length) that move Anny's bone
#: heads to where MediaPipe and real annotations put the joints (measured in docs/synthetic_data.md:
#: Anny's wrist sits ~13 mm proximal, its MCPs 5-9 mm distal, its proximal phalanges half the real
#: length). keypoint -> (anchor bone, move): the move is `("toward", bone, mm)` along the line to
#: another bone head at rest, `("beyond", bone, mm)` away from it, or `("offset", (x, y, z) mm)` in the
#: canonical axes. The corrected point is rigid in the anchor bone's frame, so it follows the skeleton
#: exactly like a bone head would. The corrected wrist is then moved to the origin.
KEYPOINT_CORRECTIONS = {
    0: ("wrist.R", ("toward", "finger3-1.R", 13.0)),
    1: ("wrist.R", ("offset", (-8.0, -6.0, -2.0))),
    2: ("finger1-1.R", ("beyond", "finger1-1.R", 7.0)),
    5: ("wrist.R", ("toward", "metacarpal1.R", 10.0)),
    9: ("wrist.R", ("toward", "metacarpal2.R", 9.0)),
    13: ("wrist.R", ("toward", "metacarpal3.R", 8.0)),
    17: ("wrist.R", ("toward", "metacarpal4.R", 6.5)),
}


def _init_warp_quietly() -> None:
    """Initialise NVIDIA Warp (Anny's skinning kernels) without its banner and the native
    'no CUDA driver' warning on CPU machines, so CLI output stays one clean line per event."""
    import warp

    from core.quiet import native_stderr_silenced

    warp.config.log_level = 40
    with native_stderr_silenced():
        warp.init()


def _build_anny():
    os.environ.setdefault("ANNY_CACHE_DIR", str(anny_cache_dir()))
    try:
        _init_warp_quietly()
        import anny
        from anny.paths import set_anny_cache_path
    except Exception as exc:  # pragma: no cover - install problem
        raise HandModelError(f"the 'anny' package cannot be imported ({exc}); run scripts/setup.sh") from exc
    set_anny_cache_path(os.environ["ANNY_CACHE_DIR"])
    model = anny.Anny(rig="anny-hand.R", topology="hand.R", pose_parameterization="local-bone",
                      local_changes=list(LOCAL_CHANGES))
    return model.to(torch.float32)


class AnnyHand(HandModel):
    """Anny right hand behind the `HandModel` interface (differentiable in pose and shape)."""

    name = "anny"
    pose_dim = POSE_DIM
    shape_dim = len(SHAPE_NAMES)

    def __init__(self) -> None:
        super().__init__()
        self.anny = _build_anny()
        labels = list(self.anny.bone_labels)
        self.register_buffer("_art_idx", torch.tensor([labels.index(b) for b in ARTICULATED_BONES]), persistent=False)
        kp = [labels.index(b) if b is not None else -1 for b in _KEYPOINT_BONES]
        self._kp_bone = torch.tensor([i for i in kp if i >= 0])
        self._kp_is_bone = torch.tensor([i >= 0 for i in kp])
        self._faces = self.anny.get_triangular_faces().cpu().numpy().astype(np.int64)
        # Sparse skinning data of the five tip vertices, for the joints-only path.
        tips = torch.tensor(TIP_VERTICES)
        self.register_buffer("_tip_w", self.anny.vertex_bone_weights[tips].float(), persistent=False)
        self.register_buffer("_tip_i", self.anny.vertex_bone_indices[tips].long(), persistent=False)
        self._n_bones = len(labels)
        self._palm_bones = (labels.index("wrist.R"), labels.index("finger3-1.R"))
        self._init_corrections(labels)
        assert list(self.anny.phenotype_labels) == list(PHENOTYPES), self.anny.phenotype_labels
        assert list(self.anny.local_change_labels) == list(LOCAL_CHANGES), self.anny.local_change_labels
        self.warm_caches()

    def _rest_bone_poses(self, shape: torch.Tensor) -> torch.Tensor:
        return self.anny.get_rest_model(self._blend_coeffs(shape))["rest_bone_poses"]

    def _palm_length(self, bone_poses: torch.Tensor) -> torch.Tensor:
        w, m = self._palm_bones
        return (bone_poses[:, m, :3, 3] - bone_poses[:, w, :3, 3]).norm(dim=-1)  # (B,)

    def _init_corrections(self, labels: list[str]) -> None:
        """Express each corrected keypoint in its anchor bone's rest frame, in palm lengths."""
        with torch.no_grad():
            rest = self._rest_bone_poses(self.neutral_shape())[0]
            palm = self._palm_length(rest[None])[0]
            kp_idx, anchors, local = [], [], []
            for kp, (anchor, move) in KEYPOINT_CORRECTIONS.items():
                head = rest[labels.index(_KEYPOINT_BONES[kp]), :3, 3]
                if move[0] == "offset":
                    # canonical axes = the wrist bone's frame (the rest pose is the full-body frame)
                    wrist_rot = rest[self._palm_bones[0], :3, :3]
                    delta = wrist_rot @ torch.tensor(move[1], dtype=rest.dtype) / 1000
                else:
                    other = rest[labels.index(move[1]), :3, 3]
                    direction = other - head if move[0] == "toward" else head - other
                    delta = direction / direction.norm() * move[2] / 1000
                a = rest[labels.index(anchor)]
                local.append(a[:3, :3].T @ (head + delta - a[:3, 3]) / palm)
                kp_idx.append(kp)
                anchors.append(labels.index(anchor))
        self._corr_kp = kp_idx
        self._corr_anchor = torch.tensor(anchors, dtype=torch.long)
        self.register_buffer("_corr_local", torch.stack(local) if local else torch.zeros(0, 3),
                             persistent=False)  # (C,3)

    def keypoints(self, bone_poses: torch.Tensor, tips: torch.Tensor, rest_bone_poses: torch.Tensor):
        """The 21 keypoints from posed bone poses (B,J,4,4) and tip vertices (B,5,3): bone heads,
        tips, then KEYPOINT_CORRECTIONS; shifted so the corrected wrist is the origin. Returns
        (joints (B,21,3), the shift (B,1,3) to apply to vertices too). The one place that defines them."""
        b = bone_poses.shape[0]
        palm = self._palm_length(rest_bone_poses).expand(b)  # (B,)
        heads = bone_poses[:, self._kp_bone, :3, 3]  # (B,16,3)
        joints = torch.empty(b, 21, 3, dtype=heads.dtype, device=heads.device)
        joints[:, self._kp_is_bone] = heads
        joints[:, ~self._kp_is_bone] = tips
        anchor = bone_poses[:, self._corr_anchor]  # (B,C,4,4)
        local = self._corr_local[None] * palm[:, None, None]  # (B,C,3)
        joints[:, self._corr_kp] = (anchor[..., :3, :3] @ local[..., None]).squeeze(-1) + anchor[..., :3, 3]
        origin = joints[:, :1].clone()
        return joints - origin, origin

    def warm_caches(self) -> None:
        """roma caches a constant per device on first use; created inside `torch.inference_mode` it
        would later break autograd ("Inference tensors cannot be saved for backward"). Build it here as
        a normal tensor. Call again after moving the model to a new device."""
        with torch.inference_mode(False), torch.no_grad():
            self.joints()

    @property
    def num_vertices(self) -> int:
        return int(self.anny.template_vertices.shape[0])

    @property
    def device(self) -> torch.device:
        return self.anny.template_vertices.device

    def neutral_shape(self, batch: int = 1) -> torch.Tensor:
        return torch.tensor(NEUTRAL_SHAPE, dtype=self.dtype, device=self.device).expand(batch, -1)

    def _deltas(self, pose: torch.Tensor) -> torch.Tensor:
        b = pose.shape[0]
        deltas = torch.eye(4, dtype=pose.dtype, device=pose.device).repeat(b, self._n_bones, 1, 1)
        rots = axis_angle_to_matrix(pose.reshape(b, -1, 3))
        deltas[:, self._art_idx, :3, :3] = rots
        return deltas

    def _blend_coeffs(self, shape: torch.Tensor) -> torch.Tensor:
        n_ph = len(PHENOTYPES)
        return self.anny._get_phenotype_blendshape_coefficients(
            shape[:, :n_ph], shape[:, n_ph:], shape.new_zeros(shape.shape[0], 0))

    def _canonical(self, pose, shape, with_vertices):
        coeffs = self._blend_coeffs(shape)
        rest = self.anny.get_rest_model(coeffs)
        transforms, bone_poses = self.anny.get_bone_transforms(self._deltas(pose), rest["rest_bone_poses"])
        b = pose.shape[0]
        if transforms.shape[0] != b:
            transforms = transforms.expand(b, -1, -1, -1)
            bone_poses = bone_poses.expand(b, -1, -1, -1)
        rest_v = rest["rest_vertices"].expand(b, -1, -1)
        if with_vertices:
            verts = self.anny.get_skinned_vertices(rest_v, transforms)
            tips = verts[:, list(TIP_VERTICES)]
        else:
            verts = None
            v = rest_v[:, list(TIP_VERTICES)]  # (B,5,3)
            t = transforms[:, :, :3, :]  # (B,J,3,4)
            t_sel = t[torch.arange(b)[:, None, None], self._tip_i[None]]  # (B,5,K,3,4)
            vh = torch.cat([v, torch.ones_like(v[..., :1])], -1)  # (B,5,4)
            moved = (t_sel @ vh[:, :, None, :, None]).squeeze(-1)  # (B,5,K,3)
            tips = (moved * self._tip_w[None, :, :, None]).sum(2)
        joints, origin = self.keypoints(bone_poses, tips, rest["rest_bone_poses"])
        if verts is not None:
            verts = verts - origin
        return joints, verts


def find_tip_vertices(model: "AnnyHand") -> list[int]:
    """Recompute TIP_VERTICES from the rest mesh: per distal bone, the dominant-weight vertex furthest
    along the direction from the middle phalanx head to the distal phalanx head."""
    a = model.anny
    out = model.forward()
    v = out.vertices[0].detach()
    labels = list(a.bone_labels)
    w, idx = a.vertex_bone_weights, a.vertex_bone_indices
    dominant = idx.gather(1, w.argmax(1, keepdim=True)).squeeze(1)
    heads = a(pose_parameters=None)["bone_poses"][0, :, :3, 3].float()
    tips = []
    for k in range(1, 6):
        b2, b3 = labels.index(f"finger{k}-2.R"), labels.index(f"finger{k}-3.R")
        d = heads[b3] - heads[b2]
        d = d / d.norm()
        cand = torch.nonzero(dominant == b3).squeeze(1)
        proj = (v[cand] - heads[b3]) @ d
        tips.append(int(cand[proj.argmax()]))
    return tips
