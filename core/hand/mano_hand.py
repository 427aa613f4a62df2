"""MANO through smplx, for users who configure a folder holding their own MANO_RIGHT.pkl (never shipped).

The file is read with the restricted unpickler of `core.hand.mano_file`; smplx gets the arrays as a
data struct, so smplx never unpickles the user's file itself. Pose vector: our layout (thumb → pinky,
proximal → distal, 15 × axis-angle) reordered to MANO's joint order, flat hand mean. Shape: 10 betas.
"""
from __future__ import annotations

import os
import pathlib

import numpy as np
import torch

from core.hand.base import HandModel, HandModelError
from core.hand.mano_file import read_mano_pickle

MANO_FILE = "MANO_RIGHT.pkl"
#: Fingertip vertices of MANO (thumb, index, middle, ring, pinky).
MANO_TIP_VERTICES = (744, 320, 443, 554, 671)
#: MANO joints (16: wrist, index1-3, middle1-3, pinky1-3, ring1-3, thumb1-3) + tips 16-20 → our order.
_TO_OURS = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]
#: Our articulated bone k (thumb→pinky) → MANO hand-pose joint index (0-based over 15 joints).
_OUR_BONE_TO_MANO = [12, 13, 14, 0, 1, 2, 3, 4, 5, 9, 10, 11, 6, 7, 8]


def mano_file_in(folder: str | os.PathLike | None) -> pathlib.Path:
    """The MANO_RIGHT.pkl inside `folder` (or `folder` itself if it is the file); clear error otherwise."""
    if not folder:
        raise HandModelError(f"MANO is not configured: point --mano-dir (or Settings ▸ MANO folder) at the "
                             f"folder holding {MANO_FILE}")
    p = pathlib.Path(folder).expanduser()
    f = p if p.is_file() else p / MANO_FILE
    if not p.exists():
        raise HandModelError(f"MANO folder {p} does not exist (expected {MANO_FILE} inside)")
    if not f.exists():
        raise HandModelError(f"{MANO_FILE} not found in {p} (download it yourself from mano.is.tue.mpg.de)")
    return f


class ManoHand(HandModel):
    """MANO right hand behind the `HandModel` interface."""

    name = "mano"
    pose_dim = 45
    shape_dim = 10

    def __init__(self, folder: str | os.PathLike | None) -> None:
        super().__init__()
        import smplx
        from smplx.utils import Struct

        path = mano_file_in(folder)
        arrays = read_mano_pickle(path)
        try:
            self.mano = smplx.MANO(str(path.parent), is_rhand=True, data_struct=Struct(**arrays),
                                   use_pca=False, flat_hand_mean=True, num_betas=10)
        except Exception as exc:
            raise HandModelError(f"{path}: MANO arrays are inconsistent ({exc})") from exc
        self._faces = np.asarray(arrays["f"], dtype=np.int64)
        self.register_buffer("_perm", torch.tensor(_OUR_BONE_TO_MANO), persistent=False)

    @property
    def num_vertices(self) -> int:
        return int(self.mano.v_template.shape[0])

    @property
    def device(self) -> torch.device:
        return self.mano.v_template.device

    def neutral_shape(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(batch, self.shape_dim, dtype=self.dtype, device=self.device)

    def _canonical(self, pose, shape, with_vertices):
        b = pose.shape[0]
        mano_pose = torch.zeros_like(pose).reshape(b, 15, 3)
        mano_pose[:, self._perm] = pose.reshape(b, 15, 3)
        zeros = pose.new_zeros(b, 3)
        out = self.mano(betas=shape, global_orient=zeros, hand_pose=mano_pose.reshape(b, 45), transl=zeros)
        verts = out.vertices
        joints16 = out.joints[:, :16]
        tips = verts[:, list(MANO_TIP_VERTICES)]
        joints = torch.cat([joints16, tips], 1)[:, _TO_OURS]
        wrist = joints[:, :1]
        return joints - wrist, (verts - wrist if with_vertices else None)
