"""Anny hand meshes for the stage-2 mesh models, generated on the fly: random posed hands for the mesh
autoencoder, the fixed test split's meshes for its evaluation, and the GT meshes of rendered shards for
the mesh LDM."""
from __future__ import annotations

import math

import numpy as np
import torch

from training.data.make_dataset import DEFAULT_SEEDS

TEST_SEED = DEFAULT_SEEDS["test"]   # the fixed held-out split of make_dataset


class MeshSource:
    """Random posed hands (vertices + model joints, camera-frame orientation, wrist at the origin)."""

    def __init__(self, hand=None) -> None:
        from core.hand.anny_hand import AnnyHand

        self.hand = hand or AnnyHand()

    @torch.no_grad()
    def from_params(self, orient: np.ndarray, pose: np.ndarray, shape: np.ndarray, batch: int = 128
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(n,3) global orientation, (n,45) pose, (n,10) shape → vertices (n,V,3), joints (n,21,3)."""
        vs, js = [], []
        for s in range(0, len(pose), batch):
            out = self.hand(torch.as_tensor(orient[s:s + batch], dtype=torch.float32),
                            torch.as_tensor(pose[s:s + batch], dtype=torch.float32),
                            torch.as_tensor(shape[s:s + batch], dtype=torch.float32))
            vs.append(out.vertices.float())
            js.append(out.joints.float())
        return torch.cat(vs), torch.cat(js)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` hands: poses and shapes from core.pose_sampler, orientations biased like the renders."""
        from core.pose_sampler import sample_poses, sample_shapes
        from training.data.camera import sample_orientations

        pose, shape = sample_poses(n, rng), sample_shapes(n, rng)
        orient = sample_orientations(n, rng)
        return self.from_params(orient, pose, shape)


def test_split_params(n: int = 512) -> dict[str, np.ndarray]:
    """Labels (pose, shape, global_orient, K, transl, kp2d, …) of the first `n` samples of the fixed
    test split, exactly as `make_dataset --split test` draws them (no rendering)."""
    from training.data.make_dataset import SampleGenerator

    threads = torch.get_num_threads()
    gen = SampleGenerator(render=False)
    torch.set_num_threads(threads)
    out: dict[str, list] = {}
    shard_size = 512
    for s in range(math.ceil(n / shard_size)):
        d = gen.shard(TEST_SEED, s, min(shard_size, n - s * shard_size))
        for k, v in d.items():
            out.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in out.items()}


@torch.no_grad()
def gt_vertices(data: dict[str, np.ndarray], hand=None) -> np.ndarray:
    """Camera-axes GT vertices (n,V,3) float32 of shard labels: the shard's own `vertices` when it has
    them (real data converted to our shard layout, e.g. FreiHAND / HO3D meshes), else
    Anny(global_orient, pose, shape)."""
    if "vertices" in data:
        return np.asarray(data["vertices"], np.float32)
    v, _ = MeshSource(hand).from_params(data["global_orient"], data["pose"], data["shape"])
    return v.numpy().astype(np.float32)
