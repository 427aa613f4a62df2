"""The `HandModel` interface shared by Anny and MANO (pattern: smplx's body models)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.errors import HandModelError  # noqa: F401 - re-exported: hand modules raise it
from core.geometry import axis_angle_to_matrix


#: Global orientation (axis-angle) that shows the canonical right hand palm-on to an OpenCV camera
#: (x right, y down, z forward) with the fingers pointing up: a half turn about (1, 0, 1)/√2.
FACING_CAMERA_ORIENT = (np.pi / np.sqrt(2.0), 0.0, np.pi / np.sqrt(2.0))


@dataclass
class HandOutput:
    """Posed hand: vertices (B,V,3) and the 21 keypoints (B,21,3), metres, model/camera frame."""

    vertices: torch.Tensor
    joints: torch.Tensor


class HandModel(nn.Module):
    """A right-hand model: (global orientation, articulated pose, shape) → mesh and 21 keypoints.

    Subclasses implement `_canonical(pose, shape, with_vertices)` returning joints (B,21,3) and
    optionally vertices in the canonical frame with the wrist at the origin; this class applies the
    global orientation (about the wrist) and translation.
    """

    name: str = "hand"
    pose_dim: int = 45
    shape_dim: int = 0

    def __init__(self) -> None:
        super().__init__()
        self._faces: np.ndarray = np.zeros((0, 3), dtype=np.int64)

    # -- to be provided by subclasses ------------------------------------------------------
    def _canonical(self, pose: torch.Tensor, shape: torch.Tensor, with_vertices: bool
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def neutral_shape(self, batch: int = 1) -> torch.Tensor:
        """Shape parameters of the average hand (B, shape_dim)."""
        raise NotImplementedError

    # -- public API --------------------------------------------------------------------------
    @property
    def faces(self) -> np.ndarray:
        """Triangles (F,3) int64."""
        return self._faces

    @property
    def num_vertices(self) -> int:
        raise NotImplementedError

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def _prepare(self, global_orient, pose, shape, transl):
        pose = torch.as_tensor(pose, dtype=self.dtype, device=self.device)
        if pose.ndim == 1:
            pose = pose[None]
        if pose.shape[-1] != self.pose_dim:
            raise HandModelError(f"{self.name}: pose must have {self.pose_dim} values, got {pose.shape[-1]}")
        b = pose.shape[0]
        if shape is None:
            shape = self.neutral_shape(b)
        shape = torch.as_tensor(shape, dtype=self.dtype, device=self.device)
        if shape.ndim == 1:
            shape = shape[None]
        if shape.shape[-1] != self.shape_dim:
            raise HandModelError(f"{self.name}: shape must have {self.shape_dim} values, got {shape.shape[-1]}")
        shape = shape.expand(b, -1)
        rot = None
        if global_orient is not None:
            go = torch.as_tensor(global_orient, dtype=self.dtype, device=self.device)
            rot = axis_angle_to_matrix(go.reshape(-1, 3)).expand(b, 3, 3)
        if transl is not None:
            transl = torch.as_tensor(transl, dtype=self.dtype, device=self.device).reshape(-1, 1, 3)
        return pose, shape, rot, transl

    @staticmethod
    def _place(points: torch.Tensor, rot, transl) -> torch.Tensor:
        if rot is not None:
            points = points @ rot.transpose(1, 2)
        if transl is not None:
            points = points + transl
        return points

    def forward(self, global_orient=None, pose=None, shape=None, transl=None) -> HandOutput:
        """Batch forward. global_orient (B,3) axis-angle about the wrist, pose (B,pose_dim), shape (B,S)."""
        if pose is None:
            pose = torch.zeros(1, self.pose_dim)
        pose, shape, rot, transl = self._prepare(global_orient, pose, shape, transl)
        joints, verts = self._canonical(pose, shape, with_vertices=True)
        return HandOutput(vertices=self._place(verts, rot, transl), joints=self._place(joints, rot, transl))

    def joints(self, global_orient=None, pose=None, shape=None, transl=None) -> torch.Tensor:
        """Fast joints-only path (B,21,3) for optimisation loops — skips skinning of the full mesh."""
        if pose is None:
            pose = torch.zeros(1, self.pose_dim)
        pose, shape, rot, transl = self._prepare(global_orient, pose, shape, transl)
        joints, _ = self._canonical(pose, shape, with_vertices=False)
        return self._place(joints, rot, transl)
