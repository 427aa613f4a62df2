"""Stage 2 of the cascade (paper 000 §3.4) and the cascade estimator: joint hypotheses → mesh hypotheses.

`MeshStage.run_hand(image, stage1_result)` gives one hand's `MeshResult`:
  - **cloud mode**: each joint hypothesis → one latent sample → one mesh: `vertex_hypotheses`
    (N,V,3) and their regressed joints `mesh_joint_hypotheses` (N,21,3),
  - **paper mode**: the mean of the joint hypotheses → N latent samples → mean latent → one mesh:
    `vertices` (V,3), `mesh_joints` (21,3),
  - the stage-2 DDIM trajectory as latents (decode a step with `MeshStage.decode_latents`),
  - `mesh_cam_t` (3,) so that `vertices + mesh_cam_t` projects onto the image (K),
all root-relative (the regressed wrist at the origin) in the original camera axes, metres.
Left hands are mirrored on the way in (crop flipped, joints x → −x) and mirrored back on the way out
(their faces get the reversed winding so normals still point outwards).

The sequence image → stage 1 → stage 2 lives in `core.pipeline.ImagePipeline`; `CascadeEstimator` is
that pipeline with the mesh stage required (`CascadeEstimator().run(image, n=50, steps=10)` → one
`core.pipeline.HandResult` per selected hand).

Cost (DESIGN §10): the crop's features and every block's cross-attention keys/values are computed
once per hand; both modes run as one batch of 2N through the LDM (N when `paper_samples=0`).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from core.diffusion import GaussianDiffusion, make_schedule
from core.errors import raise_if_cancelled
from core.joints import mirror_faces, mirror_x
from core.nets.joint_diffusion import JOINT_SCALE
from core.pipeline import ImagePipeline

MESH_LDM_NAME = "mesh_ldm"


@dataclass
class Stage2Output:
    """Stage-2 results in the model (right-hand) frame, metres, root-relative."""

    vertex_hypotheses: np.ndarray        # (N,V,3)
    mesh_joint_hypotheses: np.ndarray    # (N,21,3)
    vertices: np.ndarray                 # (V,3) paper aggregate
    mesh_joints: np.ndarray              # (21,3)
    latents: np.ndarray                  # (N,168) cloud latents (raw AE space)
    latent_mean: np.ndarray              # (168,) paper-mode mean latent
    trajectory_xt: np.ndarray | None     # (S+1,N,168) whitened latents x_T … x_0 (cloud)
    trajectory_x0: np.ndarray | None     # (S,N,168) predicted x̂0 per step (cloud, whitened)
    timesteps: np.ndarray
    timings: dict = field(default_factory=dict)
    params: "MeshParams | None" = None   # Anny parameters (+ meshes, model frame) when the head is loaded


class MeshStage:
    """Frozen stage-2 models: image encoder, mesh LDM, mesh autoencoder (decoder + regressor)."""

    def __init__(self, encoder, ldm, ae, diffusion: GaussianDiffusion | None = None,
                 device: torch.device | str = "cpu", config: dict | None = None, param_head=None,
                 param_meshes: bool = True) -> None:
        self.device = torch.device(device)
        self.param_head = None if param_head is None else param_head.cpu().eval()   # core.mesh.params (issue 25)
        self.param_meshes = param_meshes     # also the Anny meshes of the parameters (~15-30 ms for 50)
        self.encoder = encoder.to(self.device).eval()
        self.ldm = ldm.to(self.device).eval()
        self.ae = ae.to(self.device).eval()
        self.diffusion = diffusion or GaussianDiffusion(make_schedule("linear"))
        self.config = config or {}

    @classmethod
    def from_weights(cls, device: torch.device | str = "cpu", models_dir=None) -> "MeshStage":
        from core.nets.image_encoder import load_image_encoder
        from core.nets.mesh_ae import load_mesh_ae
        from core.nets.mesh_ldm import load_mesh_ldm

        ldm, entry = load_mesh_ldm(MESH_LDM_NAME, models_dir)
        cfg = entry.get("config", {})
        enc_name = cfg.get("image_encoder", "image_encoder")
        encoder = load_image_encoder(enc_name, models_dir)
        ae = load_mesh_ae(cfg.get("mesh_ae", "mesh_ae"), models_dir)
        sched = cfg.get("schedule", {"kind": "linear", "T": 1000})
        diffusion = GaussianDiffusion(make_schedule(sched.get("kind", "linear"), sched.get("T", 1000)))
        return cls(encoder, ldm, ae, diffusion, device, cfg, param_head=_load_param_head(models_dir))

    @property
    def param_hand(self):
        """The Anny hand that turns parameters into meshes (CPU; built on first use)."""
        if getattr(self, "_param_hand", None) is None:
            from core.hand import load_hand_model

            self._param_hand = load_hand_model("anny")
        return self._param_hand

    def mesh_params(self, latents: np.ndarray, latent_mean: np.ndarray) -> "MeshParams | None":
        """Anny parameters (+ their meshes with `param_meshes`) of one hand's raw stage-2 latents (N,168)
        and aggregate latent (168,), model frame; None without the parameter head."""
        if self.param_head is None:
            return None
        from core.mesh.params import params_for_latents

        return params_for_latents(self.param_head, self.ae, latents, latent_mean,
                                  hand=self.param_hand if self.param_meshes else None)

    @property
    def faces(self) -> np.ndarray:
        from core.mesh.sampling import load_sampling

        if not hasattr(self, "_faces"):
            self._faces = load_sampling().faces
        return self._faces

    @torch.no_grad()
    def decode_latents(self, z: torch.Tensor | np.ndarray, whitened: bool = False, batch: int = 64,
                       cancel=None) -> tuple[np.ndarray, np.ndarray]:
        """Latents (B,168) → (vertices (B,V,3), joints (B,21,3)) metres, root-relative, model frame;
        `cancel` is checked between batches (raises `Cancelled`)."""
        z = torch.as_tensor(np.asarray(z) if not isinstance(z, torch.Tensor) else z, dtype=torch.float32,
                            device=self.device)
        if whitened:
            z = self.ae.denormalise_latent(z)
        vs, js = [], []
        for s in range(0, z.shape[0], batch):
            raise_if_cancelled(cancel)
            v, j = self.ae.decode_metres(z[s:s + batch])
            vs.append(v.cpu().numpy())
            js.append(j.cpu().numpy())
        return np.concatenate(vs), np.concatenate(js)

    @torch.no_grad()
    def context(self, crop: torch.Tensor):
        """Crop(s) (B,3,R,R) in [0,1] → the LDM context (features + K/V, once per image)."""
        return self.ldm.prepare_context(self.encoder.features(crop.to(self.device)))

    @torch.no_grad()
    def sample(self, crop: torch.Tensor, joint_hyps: np.ndarray, steps: int = 10, seed: int = 0,
               eta: float = 0.0, paper_samples: int | None = None, record: bool = True,
               progress: Callable[[int, int], None] | None = None, cancel=None) -> Stage2Output:
        """One right-hand crop (1,3,R,R) and N root-relative joint hypotheses (N,21,3) metres (model
        frame) → cloud meshes + the paper aggregate. `paper_samples` latents for the paper mode
        (default N; 0 skips it and uses the mean of the cloud latents instead)."""
        t0 = time.perf_counter()
        hyps = np.asarray(joint_hyps, np.float32)
        n = hyps.shape[0]
        m = n if paper_samples is None else int(paper_samples)
        ctx = self.context(crop)
        cond = hyps / JOINT_SCALE
        if m > 0:
            cond = np.concatenate([cond, np.repeat(hyps.mean(0, keepdims=True) / JOINT_SCALE, m, 0)])
        cond_t = torch.from_numpy(cond).to(self.device)
        t1 = time.perf_counter()
        res = self.diffusion.ddim_sample(self.ldm, (cond.shape[0], self.ldm.config.tokens * self.ldm.config.latent_channels),
                                         steps=steps, eta=eta, seed=seed, device=self.device, record=record,
                                         progress=progress, cancel=cancel, joints=cond_t, context=ctx)
        t2 = time.perf_counter()
        z = self.ae.denormalise_latent(res.x0)
        z_cloud = z[:n]
        z_mean = z[n:].mean(0, keepdim=True) if m > 0 else z_cloud.mean(0, keepdim=True)
        v, j = self.decode_latents(torch.cat([z_cloud, z_mean]))
        t3 = time.perf_counter()
        params = self.mesh_params(z_cloud, z_mean[0])
        t4 = time.perf_counter()
        return Stage2Output(
            vertex_hypotheses=v[:n], mesh_joint_hypotheses=j[:n], vertices=v[n], mesh_joints=j[n],
            latents=z_cloud.cpu().numpy(), latent_mean=z_mean[0].cpu().numpy(),
            trajectory_xt=res.xs[:, :n].numpy() if res.xs is not None else None,
            trajectory_x0=res.x0_preds[:, :n].numpy() if res.x0_preds is not None else None,
            timesteps=np.array(res.timesteps), params=params,
            timings={"features_s": t1 - t0, "ldm_s": t2 - t1, "decode_s": t3 - t2, "params_s": t4 - t3})

    def run_hand(self, image: np.ndarray, s1, steps: int = 10, seed: int = 0, eta: float = 0.0,
                 paper_samples: int | None = None, progress: Callable[[int, int], None] | None = None,
                 cancel=None) -> "MeshResult":
        """One hand's stage 2: its crop of the RGB `image` and its stage-1 result (`Stage1Result`, photo
        axes) → `MeshResult` in the photo's axes (a left hand is mirrored in and back out)."""
        from core.detector import crop_box
        from core.nets.image_encoder import crop_image, to_tensor
        from core.stage1 import solve_cam_t

        t0 = time.perf_counter()
        left = s1.handedness == "left"
        crop = to_tensor(crop_image(image, crop_box(s1.keypoints2d), self.encoder.config.res, mirror=left))
        hyps = mirror_x(s1.joint_hypotheses) if left else np.asarray(s1.joint_hypotheses)
        out = self.sample(crop, hyps, steps=steps, seed=seed, eta=eta, paper_samples=paper_samples,
                          progress=progress, cancel=cancel)
        faces = self.faces
        vh, jh, v, j = out.vertex_hypotheses, out.mesh_joint_hypotheses, out.vertices, out.mesh_joints
        params = out.params
        if left:
            vh, jh, v, j = mirror_x(vh), mirror_x(jh), mirror_x(v), mirror_x(j)
            faces = mirror_faces(faces)
            params = None if params is None else params.mirrored()
        cam_t = solve_cam_t(j, s1.keypoints2d, s1.K, s1.keypoints2d_score)
        return MeshResult(vertex_hypotheses=vh, vertices=v, faces=faces, mesh_joint_hypotheses=jh, mesh_joints=j,
                          mesh_cam_t=cam_t, trajectory_latents_xt=out.trajectory_xt,
                          trajectory_latents_x0=out.trajectory_x0, mesh_timesteps=out.timesteps, params=params,
                          timings=dict(out.timings, stage2_s=time.perf_counter() - t0))


from core.results import MeshParams, MeshResult, mesh_npz_arrays  # noqa: E402,F401 - numpy-only home (issue 27)


def _load_param_head(models_dir=None):
    """The shipped parameter head, or None when its weights are missing (parameters are optional)."""
    from core.errors import WeightsError
    from core.mesh.params import load_param_head

    try:
        return load_param_head(models_dir=models_dir)
    except WeightsError:
        return None


class CascadeEstimator(ImagePipeline):
    """The image pipeline (`core.pipeline`) with its mesh stage required: image → per-hand
    `HandResult` with joints (stage 1) and meshes (stage 2)."""

    def __init__(self, device: torch.device | str = "cpu", stage1=None, mesh_stage: MeshStage | None = None,
                 detector=None) -> None:
        from core.stage1 import Stage1Estimator

        super().__init__(stage1 or Stage1Estimator(device=device, detector=detector),
                         mesh_stage or MeshStage.from_weights(device))
