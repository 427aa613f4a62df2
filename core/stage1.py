"""Stage 1: a detected hand's 2D keypoints → crop-normalised 2D → N root-relative 3D joint hypotheses.

`Stage1Estimator.run_detection(detection, K)` mirrors a left hand into a right hand (DESIGN §3), lifts its
2D keypoints with the joint diffusion model (DDIM, N hypotheses in one batch,
recorded trajectory), mirrors back, aggregates (mean, paper; optional per-joint reprojection
aggregation, D3DP's JPMA) and solves the camera translation so that `joints + cam_t` projects onto
the keypoints.

Crop normalisation (shared with training, `normalise_rays`): keypoints are first turned into
normalised image rays K⁻¹·[u, v, 1] (so any intrinsics work), then centred on the square crop box of
their bounding box (`core.detector.CROP_PAD` padding) and divided by its half side → [-1, 1]. The crop
centre ray and log half side go to the network as a context vector (perspective cue).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from core.detector import CROP_PAD, Detection, HandDetector, mirror_K, mirror_keypoints
from core.diffusion import GaussianDiffusion, make_schedule
from core.geometry import project
from core.joints import NUM_JOINTS, mirror_x
from core.nets.joint_diffusion import JOINT_SCALE, JointDiffusionConfig, JointDiffusionNet
from core.occlusion import joint_occlusion

WEIGHTS_NAME = "joint_diffusion"


# --- crop normalisation (training and inference) ---------------------------------------------------

# The per-hypothesis 2D jitter of keypoints flagged as hidden (σ as a fraction of the keypoint box side,
# `JointLifter.per_hypothesis`). A hidden keypoint's 2D is the detector's guess, but the lifter, given one
# fixed guess, returns hypotheses no wider for a hidden joint than for a seen one (it barely uses the flag as
# an uncertainty signal); jittering the guess per hypothesis samples that uncertainty too. 0.15 (sweep
# 0 / 0.04 / 0.08 / 0.15 / 0.25 in docs/results.md, stage-1 notes): the smallest value at which, on the
# synthetic split, hidden joints spread more than visible ones (the same joint hidden vs seen, too), for
# +0.28 mm mean-of-50 error (5.69 -> 5.97 mm); real images: +0.06 mm (10.03 -> 10.09). Below the training noise model's σ for a flagged keypoint
# (`detector_noise`: U(0.005, 0.05) × (1 + 2.5) plus 30 % outliers).
OCCLUDED_JITTER = 0.15

# DDIM steps of the occlusion pre-pass (`JointLifter.estimate_occlusion`), never more than the run's own
# steps (a 1-step run gets a 1-step pre-pass, at a fifth of the cost). Flags from 8 hypotheses vs the
# synthetic test split's true self-occlusion (128 hands): 5 steps agree on 92.5 % of joints (recall 0.870),
# 3 steps 92.6 % (0.865), 1 step 92.3 % (0.857). A 3-step pre-pass for 10-step runs cost +0.05 mm
# mean-of-50 PA-MPJPE on the synthetic split (5.98 -> 6.03 mm) for ~10 ms, so 10-step runs keep 5.
OCCLUSION_PREPASS_STEPS = 5


def normalise_rays(rays: torch.Tensor, pad: float = CROP_PAD) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays (B,21,2) → (c2d (B,21,2) in about [-1, 1], ctx (B,3) = [2·centre_x, 2·centre_y, log half + 1.5])."""
    lo = rays.min(1).values
    hi = rays.max(1).values
    centre = (lo + hi) / 2
    half = ((hi - lo).max(-1).values / 2 * (1 + 2 * pad)).clamp_min(1e-6)
    c2d = (rays - centre[:, None]) / half[:, None, None]
    ctx = torch.cat([2 * centre, (half.log() + 1.5)[:, None]], -1)
    return c2d, ctx


def pixels_to_rays(kp2d: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(…,21,2) pixels → normalised image-plane coordinates ((u - cx)/fx, (v - cy)/fy)."""
    K = np.asarray(K, np.float64)
    kp = np.asarray(kp2d, np.float64)
    return np.stack([(kp[..., 0] - K[0, 2]) / K[0, 0], (kp[..., 1] - K[1, 2]) / K[1, 1]], -1)


def solve_cam_t(joints: np.ndarray, kp2d: np.ndarray, K: np.ndarray, weights: np.ndarray | None = None
                ) -> np.ndarray:
    """Translation t (3,) minimising the (linearised) reprojection error of `joints + t` onto `kp2d`.

    For each joint: X + tx − x·(Z + tz) = 0 and Y + ty − y·(Z + tz) = 0 with (x, y) its ray;
    weighted linear least squares, then a few Gauss-Newton steps on the pixel error.
    """
    j = np.asarray(joints, np.float64)
    r = pixels_to_rays(kp2d, K)
    w = np.ones(len(j)) if weights is None else np.asarray(weights, np.float64)
    n = len(j)
    A = np.zeros((2 * n, 3))
    A[0::2, 0] = 1
    A[0::2, 2] = -r[:, 0]
    A[1::2, 1] = 1
    A[1::2, 2] = -r[:, 1]
    b = np.empty(2 * n)
    b[0::2] = r[:, 0] * j[:, 2] - j[:, 0]
    b[1::2] = r[:, 1] * j[:, 2] - j[:, 1]
    ww = np.repeat(np.sqrt(w), 2)
    t = np.linalg.lstsq(A * ww[:, None], b * ww, rcond=None)[0]
    # Refine on the true projection error (ray units).
    for _ in range(5):
        p = j + t
        z = np.maximum(p[:, 2], 1e-4)
        res = np.concatenate([(p[:, 0] / z - r[:, 0]), (p[:, 1] / z - r[:, 1])])
        jac = np.zeros((2 * n, 3))
        jac[:n, 0] = 1 / z
        jac[:n, 2] = -p[:, 0] / z ** 2
        jac[n:, 1] = 1 / z
        jac[n:, 2] = -p[:, 1] / z ** 2
        w2 = np.concatenate([np.sqrt(w), np.sqrt(w)])
        step = np.linalg.lstsq(jac * w2[:, None], -res * w2, rcond=None)[0]
        t = t + step
        if np.abs(step).max() < 1e-7:
            break
    if t[2] + j[:, 2].min() <= 0:   # degenerate: keep the hand in front of the camera
        t[2] = 0.05 - j[:, 2].min()
    return t


def aggregate(hyps: np.ndarray, mode: str = "mean", kp2d: np.ndarray | None = None, K: np.ndarray | None = None,
              cam_t: np.ndarray | None = None) -> np.ndarray:
    """Aggregate hypotheses (N,21,3). 'mean' (paper) or 'jpma': per joint, the hypothesis whose
    reprojection (with `cam_t`) is closest to the 2D keypoint (D3DP's joint-wise reprojection aggregation)."""
    hyps = np.asarray(hyps, np.float64)
    if mode == "mean":
        return hyps.mean(0)
    if mode == "jpma":
        if kp2d is None or K is None or cam_t is None:
            raise ValueError("jpma aggregation needs keypoints, K and cam_t")
        uv = project(hyps + cam_t, K)                                # (N,21,2)
        err = np.linalg.norm(uv - np.asarray(kp2d)[None], axis=-1)  # (N,21)
        best = err.argmin(0)
        return hyps[best, np.arange(hyps.shape[1])]
    raise ValueError(f"unknown aggregation {mode!r} (mean, jpma)")


# --- results -----------------------------------------------------------------------------------------

from core.results import Stage1Result  # noqa: E402,F401 - numpy-only home (issue 27)


# --- the model -------------------------------------------------------------------------------------

class JointLifter:
    """The trained joint diffusion model: 2D keypoints (px) + K → N root-relative right-hand joint sets."""

    def __init__(self, net: JointDiffusionNet, diffusion: GaussianDiffusion, device: torch.device | str = "cpu",
                 config: dict | None = None) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.diffusion = diffusion
        self.config = config or {}
        self.eta = float(self.config.get("eta", 0.0))
        self.occluded_jitter = float(self.config.get("occluded_jitter", OCCLUDED_JITTER))

    @classmethod
    def from_weights(cls, device: torch.device | str = "cpu", name: str = WEIGHTS_NAME, models_dir=None
                     ) -> "JointLifter":
        from core.weights import load_network

        net, entry = load_network(name, lambda c: JointDiffusionNet(JointDiffusionConfig(**c["net"])), models_dir)
        cfg = entry.get("config", {})
        sched = cfg.get("schedule", {"kind": "linear", "T": 1000})
        diffusion = GaussianDiffusion(make_schedule(sched.get("kind", "linear"), sched.get("T", 1000)))
        return cls(net, diffusion, device, cfg)

    @property
    def takes_occlusion(self) -> bool:
        """Whether the network also reads a per-keypoint "probably hidden" flag (third condition channel)."""
        return self.net.config.cond_dim >= 3

    @torch.no_grad()
    def estimate_occlusion(self, rays: torch.Tensor, n: int = 8, steps: int = OCCLUSION_PREPASS_STEPS,
                           seed: int = 0) -> torch.Tensor:
        """(B,21,2) rays → (B,21) bool: the keypoints the lifted hand hides from the camera.

        A quick first pass (no keypoint flagged, `n` hypotheses × `steps`) gives a mean 3D hand; placed in
        front of the camera (`solve_cam_t` in ray units), the capsule-hand test (`core.occlusion`) says
        which joints lie behind the hand. MediaPipe reports no per-keypoint visibility, so this is the
        estimate the second, flagged pass conditions on (training flips some flags to match its errors).
        """
        b = rays.shape[0]
        c2d, ctx = normalise_rays(rays)
        c2d = torch.cat([c2d, torch.zeros_like(c2d[..., :1])], -1)
        res = self.diffusion.ddim_sample(self.net, (b * n, NUM_JOINTS, 3), steps=steps, eta=0.0, seed=seed,
                                         device=self.device, record=False,
                                         c2d=c2d.repeat_interleave(n, 0).to(self.device),
                                         ctx=ctx.repeat_interleave(n, 0).to(self.device))
        mean = (res.x0.reshape(b, n, NUM_JOINTS, 3).mean(1).double().cpu() * JOINT_SCALE).numpy()
        mean = mean - mean[:, :1]
        r = rays.double().cpu().numpy()
        cam = np.stack([m + solve_cam_t(m, ri, np.eye(3)) for m, ri in zip(mean, r)])
        return joint_occlusion(torch.from_numpy(cam).float())

    def per_hypothesis(self, c2d: torch.Tensor, ctx: torch.Tensor, n: int, seed: int = 0
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,21,C) condition → (B·n,21,C), one copy per hypothesis; on an occlusion-aware network every
        copy's flagged keypoints are moved by their own Gaussian draw (σ = `occluded_jitter` × the keypoint
        box side): the 2D of a hidden joint is the detector's guess, so the hypotheses sample that guess's
        uncertainty as well as the lifting's (see OCCLUDED_JITTER)."""
        c2d = c2d.repeat_interleave(n, 0)
        ctx = ctx.repeat_interleave(n, 0)
        if c2d.shape[-1] < 3 or self.occluded_jitter <= 0:
            return c2d, ctx
        gen = torch.Generator().manual_seed(int(seed) + 7919)
        sigma = self.occluded_jitter * 2 / (1 + 2 * CROP_PAD)          # box side in c2d units is 2 / (1 + 2·pad)
        eps = torch.randn(c2d.shape[:-1] + (2,), generator=gen) * sigma
        xy = c2d[..., :2] + eps * (c2d[..., 2:3] > 0.5)
        return torch.cat([xy, c2d[..., 2:]], -1), ctx

    def condition(self, rays: torch.Tensor, occluded: torch.Tensor | None = None, steps: int = OCCLUSION_PREPASS_STEPS
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Rays (B,21,2) → the network's (c2d, ctx) and, for an occlusion-aware network, the flags (B,21)
        it was given (`occluded`, or estimated with `estimate_occlusion` in at most `steps` DDIM steps
        when None)."""
        rays = torch.as_tensor(rays, dtype=torch.float32)
        c2d, ctx = normalise_rays(rays)
        if not self.takes_occlusion:
            return c2d, ctx, None
        if occluded is None:
            occluded = self.estimate_occlusion(rays, steps=min(OCCLUSION_PREPASS_STEPS, steps))
        return torch.cat([c2d, occluded.to(c2d)[..., None]], -1), ctx, occluded

    @torch.no_grad()
    def sample_rays(self, rays: torch.Tensor, n: int, steps: int = 10, eta: float | None = None, seed: int = 0,
                    occluded: torch.Tensor | None = None) -> torch.Tensor:
        """Many hands at once (evaluation): rays (B,21,2) → (B, n, 21, 3) hypotheses in network units."""
        c2d, ctx, _ = self.condition(rays, occluded, steps)
        b = c2d.shape[0]
        c2d, ctx = self.per_hypothesis(c2d, ctx, n, seed)
        res = self.diffusion.ddim_sample(self.net, (b * n, NUM_JOINTS, 3), steps=steps,
                                         eta=self.eta if eta is None else eta,
                                         seed=seed, device=self.device, record=False,
                                         c2d=c2d.to(self.device), ctx=ctx.to(self.device))
        return res.x0.reshape(b, n, NUM_JOINTS, 3).cpu()

    @torch.no_grad()
    def lift_rays(self, rays: np.ndarray, n: int = 50, steps: int = 10, seed: int = 0, eta: float | None = None,
                  progress: Callable[[int, int], None] | None = None, cancel=None, record: bool = True):
        """Rays (21,2) of a right hand → DDIMResult in network units (divide by JOINT_SCALE); with an
        occlusion-aware network `extra["occluded"]` holds the estimated flags (21,) bool."""
        r = torch.as_tensor(np.asarray(rays, np.float32))[None]
        c2d, ctx, occluded = self.condition(r, steps=steps)
        c2d, ctx = self.per_hypothesis(c2d, ctx, n, seed)
        c2d, ctx = c2d.to(self.device), ctx.to(self.device)
        res = self.diffusion.ddim_sample(self.net, (n, NUM_JOINTS, 3), steps=steps,
                                         eta=self.eta if eta is None else eta,
                                         seed=seed, device=self.device, record=record, progress=progress,
                                         cancel=cancel, c2d=c2d, ctx=ctx)
        if occluded is not None:
            res.extra["occluded"] = occluded[0].numpy()
        return res

    def lift(self, kp2d: np.ndarray, K: np.ndarray, mirrored: bool = False, width: int | None = None, **kw):
        """Pixel keypoints of a hand (21,2) + K → (hyps (N,21,3) m, xs (S+1,N,21,3), x0s (S,N,21,3), timesteps).

        `mirrored=True` (a left hand): keypoints and K are mirrored (needs `width`), lifted as a right
        hand, and the results mirrored back into the original camera axes.
        """
        kp, Km = np.asarray(kp2d, np.float64), np.asarray(K, np.float64)
        if mirrored:
            if width is None:
                raise ValueError("mirroring needs the image width")
            kp, Km = mirror_keypoints(kp, width), mirror_K(Km, width)
        res = self.lift_rays(pixels_to_rays(kp, Km), **kw)

        def metres(x):   # network units → metres, mirrored back, wrist moved to the origin (root-relative)
            x = x.cpu().numpy().astype(np.float64) * JOINT_SCALE
            x = mirror_x(x) if mirrored else x
            return x - x[..., :1, :]

        hyps = metres(res.x0)
        xs = metres(res.xs) if res.xs is not None else None
        x0s = metres(res.x0_preds) if res.x0_preds is not None else None
        return hyps, xs, x0s, np.array(res.timesteps)


class Stage1Estimator:
    """Image → detections → per-hand `Stage1Result` (the stage-1 half of the cascade)."""

    def __init__(self, device: torch.device | str = "cpu", lifter: JointLifter | None = None,
                 detector: HandDetector | None = None) -> None:
        self.lifter = lifter or JointLifter.from_weights(device)
        self._detector = detector

    @property
    def detector(self) -> HandDetector:
        if self._detector is None:
            from core.detector import default_detector
            self._detector = default_detector()
        return self._detector

    def run_detection(self, det: Detection, K: np.ndarray, n: int = 50, steps: int = 10, seed: int = 0,
                      eta: float | None = None, aggregation: str = "mean",
                      progress: Callable[[int, int], None] | None = None, cancel=None) -> Stage1Result:
        t0 = time.perf_counter()
        mirrored = det.handedness == "left"
        hyps, xs, x0s, ts = self.lifter.lift(det.keypoints2d, K, mirrored=mirrored, width=det.image_size[0],
                                             n=n, steps=steps, seed=seed, eta=eta, progress=progress, cancel=cancel)
        t1 = time.perf_counter()
        mean = hyps.mean(0)
        cam_t = solve_cam_t(mean, det.keypoints2d, K, det.scores)
        joints = aggregate(hyps, aggregation, det.keypoints2d, K, cam_t)
        if aggregation != "mean":
            cam_t = solve_cam_t(joints, det.keypoints2d, K, det.scores)
        return Stage1Result(
            keypoints2d=det.keypoints2d, keypoints2d_score=det.scores, hand_score=det.score,
            handedness=det.handedness, K=np.asarray(K, np.float64), box=det.box, joint_hypotheses=hyps,
            joints=joints, cam_t=cam_t, trajectory_xt=xs, trajectory_x0=x0s, timesteps=ts,
            timings={"lift_s": t1 - t0, "total_s": time.perf_counter() - t0},
            world_landmarks_mediapipe=det.world_landmarks)

    def run(self, image: np.ndarray, n: int = 50, steps: int = 10, seed: int = 0, hand: str = "largest",
            K: np.ndarray | None = None, eta: float | None = None, aggregation: str = "mean",
            progress: Callable[[int, int], None] | None = None, cancel=None) -> list[Stage1Result]:
        """All selected hands of an RGB uint8 image, stage 1 only (the image pipeline, `core.pipeline`,
        without its mesh stage). Raises NoHandError / InputError."""
        from core.pipeline import ImagePipeline

        return [r.stage1 for r in ImagePipeline(self).run(image, hand=hand, K=K, n=n, steps=steps, seed=seed, eta=eta,
                                                          aggregation=aggregation, progress=progress, cancel=cancel)]
