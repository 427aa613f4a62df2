"""The full cascade (paper 000 §3.4): image → 50 joint hypotheses (stage 1) → 50 mesh hypotheses (stage 2).

`CascadeEstimator.run(image, n=50, steps=10)` returns one `CascadeResult` per selected hand:
  - the stage-1 result (keypoints, joint hypotheses, joint trajectory, cam_t),
  - **cloud mode**: each joint hypothesis → one latent sample → one mesh: `vertex_hypotheses`
    (N,V,3) and their regressed joints `mesh_joint_hypotheses` (N,21,3),
  - **paper mode**: the mean of the joint hypotheses → N latent samples → mean latent → one mesh:
    `vertices` (V,3), `mesh_joints` (21,3),
  - the stage-2 DDIM trajectory as latents (decode a step with `MeshStage.decode_latents`),
  - `mesh_cam_t` (3,) so that `vertices + mesh_cam_t` projects onto the image (K),
all root-relative (the regressed wrist at the origin) in the original camera axes, metres.
Left hands are mirrored on the way in (crop flipped, joints x → −x) and mirrored back on the way out
(their faces get the reversed winding so normals still point outwards).

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
from core.errors import InputError, raise_if_cancelled
from core.nets.joint_diffusion import JOINT_SCALE

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


class MeshStage:
    """Frozen stage-2 models: image encoder, mesh LDM, mesh autoencoder (decoder + regressor)."""

    def __init__(self, encoder, ldm, ae, diffusion: GaussianDiffusion | None = None,
                 device: torch.device | str = "cpu", config: dict | None = None) -> None:
        self.device = torch.device(device)
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
        return cls(encoder, ldm, ae, diffusion, device, cfg)

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
        return Stage2Output(
            vertex_hypotheses=v[:n], mesh_joint_hypotheses=j[:n], vertices=v[n], mesh_joints=j[n],
            latents=z_cloud.cpu().numpy(), latent_mean=z_mean[0].cpu().numpy(),
            trajectory_xt=res.xs[:, :n].numpy() if res.xs is not None else None,
            trajectory_x0=res.x0_preds[:, :n].numpy() if res.x0_preds is not None else None,
            timesteps=np.array(res.timesteps),
            timings={"features_s": t1 - t0, "ldm_s": t2 - t1, "decode_s": t3 - t2})


def _mirror(points: np.ndarray) -> np.ndarray:
    out = np.array(points, copy=True)
    out[..., 0] *= -1
    return out


@dataclass
class CascadeResult:
    """One hand, original camera axes, metres; left hands already mirrored back."""

    stage1: object                         # core.stage1.Stage1Result
    vertex_hypotheses: np.ndarray          # (N,V,3) root-relative
    vertices: np.ndarray                   # (V,3) paper aggregate, root-relative
    faces: np.ndarray                      # (F,3) (winding reversed for left hands)
    mesh_joint_hypotheses: np.ndarray      # (N,21,3)
    mesh_joints: np.ndarray                # (21,3)
    mesh_cam_t: np.ndarray                 # (3,) vertices + mesh_cam_t overlays the image
    trajectory_latents_xt: np.ndarray | None
    trajectory_latents_x0: np.ndarray | None
    mesh_timesteps: np.ndarray
    timings: dict = field(default_factory=dict)

    # DESIGN §2 names
    @property
    def keypoints2d(self) -> np.ndarray:
        return self.stage1.keypoints2d

    @property
    def joint_hyps(self) -> np.ndarray:
        return self.stage1.joint_hypotheses

    @property
    def mesh_hyps(self) -> np.ndarray:
        return self.vertex_hypotheses

    @property
    def aggregated(self) -> np.ndarray:
        return self.vertices

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        d = self.stage1.to_npz_dict()
        d.update(mesh_npz_arrays(self))
        return d


def mesh_npz_arrays(r: CascadeResult) -> dict[str, np.ndarray]:
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
    if r.trajectory_latents_xt is not None:
        d["trajectory_mesh_latents_xt"] = r.trajectory_latents_xt.astype(np.float32)
        d["trajectory_mesh_latents_x0"] = r.trajectory_latents_x0.astype(np.float32)
    return d


class CascadeEstimator:
    """Image → per-hand `CascadeResult` (stage 1 then stage 2)."""

    def __init__(self, device: torch.device | str = "cpu", stage1=None, mesh_stage: MeshStage | None = None,
                 detector=None) -> None:
        from core.stage1 import Stage1Estimator

        self.stage1 = stage1 or Stage1Estimator(device=device, detector=detector)
        self.mesh = mesh_stage or MeshStage.from_weights(device)

    def run_stage2(self, image: np.ndarray, s1, steps: int = 10, seed: int = 0, eta: float = 0.0,
                   paper_samples: int | None = None, progress=None, cancel=None) -> CascadeResult:
        from core.detector import crop_box
        from core.nets.image_encoder import crop_image, to_tensor
        from core.stage1 import solve_cam_t

        t0 = time.perf_counter()
        left = s1.handedness == "left"
        box = crop_box(s1.keypoints2d)
        crop = to_tensor(crop_image(image, box, self.mesh.encoder.config.res, mirror=left))
        hyps = _mirror(s1.joint_hypotheses) if left else np.asarray(s1.joint_hypotheses)
        out = self.mesh.sample(crop, hyps, steps=steps, seed=seed, eta=eta, paper_samples=paper_samples,
                               progress=progress, cancel=cancel)
        faces = self.mesh.faces
        vh, jh, v, j = out.vertex_hypotheses, out.mesh_joint_hypotheses, out.vertices, out.mesh_joints
        if left:
            vh, jh, v, j = _mirror(vh), _mirror(jh), _mirror(v), _mirror(j)
            faces = faces[:, ::-1].copy()
        cam_t = solve_cam_t(j, s1.keypoints2d, s1.K, s1.keypoints2d_score)
        timings = dict(out.timings, stage2_s=time.perf_counter() - t0)
        return CascadeResult(stage1=s1, vertex_hypotheses=vh, vertices=v, faces=faces, mesh_joint_hypotheses=jh,
                             mesh_joints=j, mesh_cam_t=cam_t, trajectory_latents_xt=out.trajectory_xt,
                             trajectory_latents_x0=out.trajectory_x0, mesh_timesteps=out.timesteps,
                             timings=timings)

    def run(self, image: np.ndarray, n: int = 50, steps: int = 10, seed: int = 0, hand: str = "largest",
            K: np.ndarray | None = None, eta: float | None = None, mesh_steps: int | None = None,
            paper_samples: int | None = None, progress: Callable[[int, int], None] | None = None,
            cancel=None) -> list[CascadeResult]:
        """All selected hands of an RGB uint8 image; progress counts stage-1 then stage-2 DDIM steps."""
        img = np.asarray(image)
        if img.ndim != 3:
            raise InputError(f"expected an RGB image, got shape {img.shape}")
        s2 = mesh_steps or steps
        total = steps + s2
        p1 = (lambda d, t: progress(d, total)) if progress else None
        results = self.stage1.run(img, n=n, steps=steps, seed=seed, hand=hand, K=K, eta=eta,
                                  progress=p1, cancel=cancel)
        out = []
        for r in results:
            p2 = (lambda d, t: progress(steps + d, total)) if progress else None
            c = self.run_stage2(img, r, steps=s2, seed=seed, eta=0.0 if eta is None else eta,
                                paper_samples=paper_samples, progress=p2, cancel=cancel)
            c.timings.update({f"stage1_{k}": v for k, v in r.timings.items()})
            out.append(c)
        return out


def add_mesh_outputs(arrays: dict, result: CascadeResult, folder, fmt: str = "obj", save_hypotheses: bool = False,
                     stem: str = "mesh") -> list:
    """For `pose-viewer infer`: add the stage-2 keys to a result.npz dict and write the aggregate mesh
    (`mesh.<fmt>`) — and with `save_hypotheses` every hypothesis (`mesh_hyp_000.<fmt>` …) — into
    `folder`. Meshes are written in the camera frame (vertices + mesh_cam_t) so they overlay the image.
    Returns the written paths."""
    import pathlib

    from core.io.export import save_mesh

    arrays.update(mesh_npz_arrays(result))
    folder = pathlib.Path(folder)
    paths = [save_mesh(folder / f"{stem}.{fmt}", result.vertices + result.mesh_cam_t, result.faces)]
    if save_hypotheses:
        for i, v in enumerate(result.vertex_hypotheses):
            paths.append(save_mesh(folder / f"{stem}_hyp_{i:03d}.{fmt}", v + result.mesh_cam_t, result.faces))
    return paths


# --- `pose-viewer infer` hook ------------------------------------------------------------------------

def add_cli_options(p) -> None:
    """Stage-2 options of `pose-viewer infer`."""
    p.add_argument("--format", default="obj", choices=["obj", "ply", "glb"],
                   help="mesh file format of mesh.<fmt> (default obj)")
    p.add_argument("--save-hypotheses", action="store_true",
                   help="also write every mesh hypothesis (mesh_hyp_000.<fmt> …)")


class CliMeshStage:
    """What `pose-viewer infer` needs from stage 2: load once, then per hand add the mesh keys to
    result.npz and write mesh.<fmt> (+ hypotheses) in the camera frame (vertices + mesh_cam_t)."""

    def __init__(self, mesh_stage: MeshStage, args) -> None:
        self.mesh = mesh_stage
        self.args = args
        self.est = CascadeEstimator.__new__(CascadeEstimator)   # stage 1 is run by the CLI itself
        self.est.mesh = mesh_stage

    @classmethod
    def create(cls, device, args, explicit: bool) -> "CliMeshStage | None":
        """None (with a note on stderr) when the stage-2 weights are missing and --stage 2 was not asked
        for explicitly; with --stage 2 a missing weight raises WeightsError naming the file."""
        import sys

        from core.errors import WeightsError

        try:
            return cls(MeshStage.from_weights(device), args)
        except WeightsError as exc:
            if explicit:
                raise
            print(f"note: mesh stage unavailable ({exc}); running stage 1 (joints) only", file=sys.stderr)
            return None

    def add_outputs(self, arrays: dict, image: np.ndarray, s1, folder, hand_index: int = 0) -> CascadeResult:
        a = self.args
        r = self.est.run_stage2(image, s1, steps=a.steps, seed=a.seed)
        stem = "mesh" if hand_index == 0 else f"mesh_hand{hand_index}"
        add_mesh_outputs(arrays, r, folder, fmt=getattr(a, "format", "obj"),
                         save_hypotheses=getattr(a, "save_hypotheses", False), stem=stem)
        return r
