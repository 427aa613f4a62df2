"""Result types of one hand (numpy only): stage 1 (`Stage1Result`) and stage 2 (`MeshResult`). The engine
process sends them to the window inside `core.pipeline.HandResult`; unpickling them there must not
import torch (issue 27), so they live here, not next to the models that produce them."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Stage1Result:
    """One hand: everything in the original image's camera axes (metres), left hands already mirrored back."""

    keypoints2d: np.ndarray          # (21,2) px
    keypoints2d_score: np.ndarray    # (21,)
    hand_score: float
    handedness: str                  # 'left' | 'right'
    K: np.ndarray                    # (3,3)
    box: np.ndarray                  # (4,) crop box px
    joint_hypotheses: np.ndarray     # (N,21,3) root-relative
    joints: np.ndarray               # (21,3) aggregate (mean)
    cam_t: np.ndarray                # (3,) joints + cam_t projects onto keypoints2d
    trajectory_xt: np.ndarray        # (S+1,N,21,3) metres root-relative, x_T … x_0
    trajectory_x0: np.ndarray        # (S,N,21,3) x̂0 predicted at each step
    timesteps: np.ndarray            # (S,)
    timings: dict = field(default_factory=dict)
    world_landmarks_mediapipe: np.ndarray | None = None

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        d = {
            "keypoints2d": self.keypoints2d.astype(np.float32),
            "keypoints2d_score": self.keypoints2d_score.astype(np.float32),
            "hand_score": np.float32(self.hand_score),
            "handedness": np.array(self.handedness),
            "K": self.K.astype(np.float64),
            "box": self.box.astype(np.float32),
            "joint_hypotheses": self.joint_hypotheses.astype(np.float32),
            "joints": self.joints.astype(np.float32),
            "cam_t": self.cam_t.astype(np.float32),
            "trajectory_joints_xt": self.trajectory_xt.astype(np.float32),
            "trajectory_joints_x0": self.trajectory_x0.astype(np.float32),
            "trajectory_timesteps": self.timesteps.astype(np.int32),
        }
        return d


@dataclass
class MeshParams:
    """Anny parameters of one hand's mesh hypotheses and of its aggregate (`core.mesh.params`, issue 25).
    Parameters are the right-hand model's (a left hand's describe its mirror image, as its `side` says);
    the Anny meshes, when computed, are in the result's frame (wrist at the origin, photo camera axes:
    mirrored back for a left hand, like the decoded meshes)."""

    hyp_global_orient: np.ndarray          # (N,3) axis-angle, camera frame about the wrist
    hyp_pose: np.ndarray                   # (N,45)
    hyp_shape: np.ndarray                  # (N,10)
    global_orient: np.ndarray              # (3,) the aggregate's
    pose: np.ndarray                       # (45,)
    shape: np.ndarray                      # (10,)
    hyp_vertices: np.ndarray | None = None  # (N,V,3) Anny meshes, metres, wrist at the origin
    vertices: np.ndarray | None = None      # (V,3)
    hyp_joints: np.ndarray | None = None    # (N,21,3)
    joints: np.ndarray | None = None        # (21,3)

    def npz(self, prefix: str = "param_") -> dict[str, np.ndarray]:
        """The `result.npz` arrays: the parameters, and the Anny meshes when computed."""
        d = {f"{prefix}hypotheses_global_orient": self.hyp_global_orient.astype(np.float32),
             f"{prefix}hypotheses_pose": self.hyp_pose.astype(np.float32),
             f"{prefix}hypotheses_shape": self.hyp_shape.astype(np.float32),
             f"{prefix}global_orient": self.global_orient.astype(np.float32),
             f"{prefix}pose": self.pose.astype(np.float32),
             f"{prefix}shape": self.shape.astype(np.float32)}
        if self.hyp_vertices is not None:
            d[f"{prefix}vertex_hypotheses"] = self.hyp_vertices.astype(np.float32)
            d[f"{prefix}vertices"] = self.vertices.astype(np.float32)
            d[f"{prefix}joint_hypotheses"] = self.hyp_joints.astype(np.float32)
            d[f"{prefix}joints"] = self.joints.astype(np.float32)
        return d

    def mirrored(self) -> "MeshParams":
        """The same parameters with the Anny meshes mirrored across x = 0 (`core.joints.mirror_x`): a left
        hand's meshes in the photo's axes."""
        from dataclasses import replace

        from core.joints import mirror_x

        if self.hyp_vertices is None:
            return replace(self)
        return replace(self, hyp_vertices=mirror_x(self.hyp_vertices), vertices=mirror_x(self.vertices),
                       hyp_joints=mirror_x(self.hyp_joints), joints=mirror_x(self.joints))


@dataclass
class Refinement:
    """One hand's hypotheses refined against its 2D keypoints with the DPoser prior (`core.refine`,
    issue 25 item 3): the refined parameters and their Anny meshes in the result's frame (wrist at the
    origin, photo camera axes, mirrored back for a left hand), each hypothesis's own camera translation,
    and the keypoint reprojection error before and after (px, mean over joints; the aggregate last)."""

    params: MeshParams                     # refined parameters + Anny meshes (hyp_*: the N hypotheses)
    hyp_transl: np.ndarray                 # (N,3) metres: refined mesh + hyp_transl overlays the photo
    transl: np.ndarray                     # (3,) the aggregate's
    reprojection_px_before: np.ndarray     # (N+1,) mean keypoint distance, hypotheses then aggregate
    reprojection_px_after: np.ndarray      # (N+1,)
    iters: int = 0
    seconds: float = 0.0

    def npz(self, prefix: str = "refined_") -> dict[str, np.ndarray]:
        """The `result.npz` arrays of the refinement (parameters, meshes, translations, errors)."""
        d = self.params.npz(prefix)
        d.update({f"{prefix}hypotheses_transl": self.hyp_transl.astype(np.float32),
                  f"{prefix}transl": self.transl.astype(np.float32),
                  f"{prefix}reprojection_px_before": self.reprojection_px_before.astype(np.float32),
                  f"{prefix}reprojection_px_after": self.reprojection_px_after.astype(np.float32),
                  f"{prefix}iters": np.int32(self.iters)})
        return d


@dataclass
class MeshResult:
    """Stage 2 of one hand in the photo's camera axes, metres, root-relative; a left hand already mirrored
    back (with reversed face winding). Part of a `core.pipeline.HandResult`."""

    vertex_hypotheses: np.ndarray          # (N,V,3) cloud: one mesh per joint hypothesis
    vertices: np.ndarray                   # (V,3) paper aggregate
    faces: np.ndarray                      # (F,3) (winding reversed for left hands)
    mesh_joint_hypotheses: np.ndarray      # (N,21,3)
    mesh_joints: np.ndarray                # (21,3)
    mesh_cam_t: np.ndarray                 # (3,) vertices + mesh_cam_t overlays the image
    trajectory_latents_xt: np.ndarray | None
    trajectory_latents_x0: np.ndarray | None
    mesh_timesteps: np.ndarray
    timings: dict = field(default_factory=dict)
    params: MeshParams | None = None       # Anny parameters (+ meshes) per hypothesis (None without the head)


def mesh_npz_arrays(r: MeshResult) -> dict[str, np.ndarray]:
    """The stage-2 keys of `result.npz` (issue 4, item 5)."""
    d = {
        "vertex_hypotheses": r.vertex_hypotheses.astype(np.float32),
        "vertices": r.vertices.astype(np.float32),
        "faces": r.faces.astype(np.int32),
        "mesh_joint_hypotheses": r.mesh_joint_hypotheses.astype(np.float32),
        "mesh_joints": r.mesh_joints.astype(np.float32),
        "mesh_cam_t": r.mesh_cam_t.astype(np.float32),
        "mesh_trajectory_timesteps": r.mesh_timesteps.astype(np.int32),
        "stage": np.int32(2),
    }
    if r.params is not None:
        d.update(r.params.npz())
    if r.trajectory_latents_xt is not None:
        d["trajectory_mesh_latents_xt"] = r.trajectory_latents_xt.astype(np.float32)
        d["trajectory_mesh_latents_x0"] = r.trajectory_latents_x0.astype(np.float32)
    return d
