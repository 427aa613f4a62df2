"""The one image pipeline: photo → hands → joint hypotheses (stage 1) → mesh hypotheses (stage 2).

Every image entry point runs through `ImagePipeline`: the window's engine (`viewer/engine.py`), the
cascade estimator (`core.cascade.CascadeEstimator`: this pipeline with its mesh stage required) and
`pose-viewer infer`. Per call:

    detect (`detector`) → select (`hand`) → per hand: side (`side`) → stage 1 (2D keypoints → N root-
    relative joint hypotheses) → stage 2 when loaded (one mesh per hypothesis + the paper aggregate)

and one hand's outcome is a `HandResult` whatever ran: the stage-1 fields always, the mesh fields
(None without the mesh stage). The decoded mesh trajectory (the viewer's denoising slider) is a
separate call, `decode_trajectory`, so a caller can show a result before paying for it.

Hooks for the features that come next (parameters exist; only the defaults are implemented):
- `detector=`: the hand finder ('palm': MediaPipe's palm detector; 'search' / 'auto': issue 26);
- `side=`: 'auto' decides each hand's side from its evidence (`core.side`: the detector's label and
  confidence, a mirror check, the landmarks' chirality); 'left' / 'right' force it (issue 28);
- `HandResult.params`: per-hypothesis hand-model parameters (`core/mesh/params.py`, issue 25);
- `estimate(image, detections, ...)` takes every hand of a photo in one call; several hands run as one
  batch per stage (`core.multihand`, issue 26).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import InputError, WeightsError, one_line
from core.hand_search import MODES as DETECTORS  # the hand finders: palm | search | auto

if TYPE_CHECKING:
    from core.cascade import MeshStage
    from core.detector import Detection
    from core.results import MeshResult, Stage1Result
    from core.stage1 import Stage1Estimator

ProgressFn = Callable[[int, int], None]   # (done, total) DDIM steps over the whole call
StageFn = Callable[[str], None]           # called as each stage begins: 'detecting', 'joints', 'meshes'

SIDES = ("auto", "left", "right")
HAND_SELECTIONS = ("largest", "left", "right", "all")
KIND_CASCADE = "cascade (joints + meshes)"
KIND_STAGE1 = "stage 1 (joints only)"


def _from_stage1(name: str, doc: str) -> property:
    return property(lambda self: getattr(self.stage1, name), doc=doc)


def _from_mesh(name: str, doc: str) -> property:
    return property(lambda self: None if self.mesh is None else getattr(self.mesh, name),
                    doc=doc + " (None without meshes)")


@dataclass
class HandResult:
    """One hand of a photo: everything root-relative in the photo's camera axes (metres), left hands
    already mirrored back. The same interface for joints-only (stage 1) and mesh (cascade) results."""

    stage1: Stage1Result
    mesh: MeshResult | None = None
    mesh_trajectory_vertices: np.ndarray | None = None   # (S,N,V,3) decoded x̂0 per stage-2 step (`decode_trajectory`)
    params: Any = None              # core.results.MeshParams: Anny parameters per hypothesis (= mesh.params; issue 25)
    timings: dict = field(default_factory=dict)
    side: Any = None                # core.side.SideDecision: how `handedness` was chosen (None: not recorded)
    trajectory_params: dict | None = None   # Anny parameters of every stage-2 step's x̂0 (`trajectory_params`)
    refined: Any = None             # core.results.Refinement: DPoser refinement against the keypoints (`core.refine`)

    keypoints2d = _from_stage1("keypoints2d", "(21,2) detector keypoints, px")
    keypoints2d_score = _from_stage1("keypoints2d_score", "(21,) per-keypoint scores")
    hand_score = _from_stage1("hand_score", "the detector's per-hand score")
    handedness = _from_stage1("handedness", "'left' | 'right'")
    K = _from_stage1("K", "(3,3) intrinsics")
    box = _from_stage1("box", "(4,) crop box, px")
    joint_hypotheses = _from_stage1("joint_hypotheses", "(N,21,3) stage-1 joint hypotheses")
    joints = _from_stage1("joints", "(21,3) stage-1 aggregate")
    cam_t = _from_stage1("cam_t", "(3,) joints + cam_t projects onto keypoints2d")
    trajectory_xt = _from_stage1("trajectory_xt", "(S+1,N,21,3) stage-1 x_T … x_0")
    trajectory_x0 = _from_stage1("trajectory_x0", "(S,N,21,3) stage-1 x̂0 per step")
    timesteps = _from_stage1("timesteps", "(S,) stage-1 DDIM timesteps")

    vertex_hypotheses = _from_mesh("vertex_hypotheses", "(N,V,3) one mesh per joint hypothesis")
    vertices = _from_mesh("vertices", "(V,3) the paper aggregate mesh")
    faces = _from_mesh("faces", "(F,3) faces (winding reversed for left hands)")
    mesh_joint_hypotheses = _from_mesh("mesh_joint_hypotheses", "(N,21,3) joints regressed from the meshes")
    mesh_joints = _from_mesh("mesh_joints", "(21,3) joints regressed from the aggregate mesh")
    mesh_cam_t = _from_mesh("mesh_cam_t", "(3,) vertices + mesh_cam_t overlays the photo")
    trajectory_latents_xt = _from_mesh("trajectory_latents_xt", "(S+1,N,168) stage-2 latents x_T … x_0")
    trajectory_latents_x0 = _from_mesh("trajectory_latents_x0", "(S,N,168) stage-2 x̂0 latents per step")
    mesh_timesteps = _from_mesh("mesh_timesteps", "(S,) stage-2 DDIM timesteps")

    @property
    def has_mesh(self) -> bool:
        return self.mesh is not None

    @property
    def stage(self) -> int:
        """1 (joints only) or 2 (joints + meshes)."""
        return 2 if self.mesh is not None else 1

    @property
    def aggregate_joints(self) -> np.ndarray:
        """The result's single skeleton: the mesh aggregate's joints with meshes, else stage 1's."""
        return self.mesh.mesh_joints if self.mesh is not None else self.stage1.joints

    # DESIGN §2 names
    @property
    def joint_hyps(self) -> np.ndarray:
        return self.joint_hypotheses

    @property
    def mesh_hyps(self) -> np.ndarray | None:
        return self.vertex_hypotheses

    @property
    def aggregated(self) -> np.ndarray | None:
        return self.vertices

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        """The `result.npz` keys (documented in core/commands/infer.py)."""
        from core.cascade import mesh_npz_arrays

        d = self.stage1.to_npz_dict()
        d["stage"] = np.int32(self.stage)
        if self.side is not None:
            d.update(self.side.npz())
        if self.mesh is not None:
            d.update(mesh_npz_arrays(self.mesh))
        if self.refined is not None:
            d.update(self.refined.npz())
        if self.trajectory_params is not None:
            d.update({f"trajectory_param_{k}": v.astype(np.float32) for k, v in self.trajectory_params.items()})
        return d


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    """One-line InputError for an option outside its choices."""
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


class ImagePipeline:
    """Detector + stage 1 (+ stage 2 when `mesh` is given), shared by the viewer, `infer` and the cascade."""

    def __init__(self, stage1: Stage1Estimator, mesh: MeshStage | None = None, note: str = "") -> None:
        self.stage1 = stage1
        self.mesh = mesh
        self.note = note    # why the mesh stage is missing, when it is

    @classmethod
    def load(cls, device: Any = "cpu", mesh: bool | None = None, models_dir=None) -> "ImagePipeline":
        """The shipped models (or those in `models_dir`). `mesh`: True requires the stage-2 weights (a
        missing file raises WeightsError naming it), False skips them, None uses them when present (else
        `note` says why not)."""
        from core.stage1 import JointLifter, Stage1Estimator

        stage1 = Stage1Estimator(lifter=JointLifter.from_weights(device, models_dir=models_dir))
        if mesh is False:
            return cls(stage1)
        from core.cascade import MeshStage

        try:
            return cls(stage1, MeshStage.from_weights(device, models_dir))
        except WeightsError as exc:
            if mesh:
                raise
            return cls(stage1, None, note=f"mesh stage unavailable: {one_line(exc)}")

    @property
    def has_mesh(self) -> bool:
        return self.mesh is not None

    @property
    def kind(self) -> str:
        """What runs, for the user: 'cascade (joints + meshes)' or 'stage 1 (joints only)'."""
        return KIND_CASCADE if self.mesh is not None else KIND_STAGE1

    def warm(self) -> None:
        """Load what the first run would otherwise load (the detector's MediaPipe bundle; the landmark
        model's interpreters, ~70 ms; the Anny hand of the mesh parameters, ~1.5 s on first use)."""
        self.stage1.detector
        from core.hand_search import default_searcher

        default_searcher()   # the landmark model of the side decision's views (core.side) and the search
        if self.mesh is not None and self.mesh.param_head is not None and self.mesh.param_meshes:
            self.mesh.param_hand

    def detect(self, image: np.ndarray, detector: str = "palm", want_all: bool = False) -> list[Detection]:
        """Every hand in an RGB image, largest first (NoHandError when there is none).

        `detector`: 'palm' (MediaPipe's palm detector + landmarks), 'search' (the landmark model over a
        crop grid, `core.hand_search`) or 'auto' (palm first; the search too when it finds nothing or
        when every hand is wanted, `want_all`)."""
        from core.hand_search import find_hands

        check_choice("detector", detector, DETECTORS)
        return find_hands(_rgb(image), detector, want_all=want_all, detector=self.stage1.detector)

    def estimate(self, image: np.ndarray, detections: Sequence[Detection], K: np.ndarray | None = None, *,
                 n: int = 50, steps: int = 10, seed: int = 0, eta: float | None = None,
                 mesh_steps: int | None = None, mesh_eta: float = 0.0, paper_samples: int | None = None,
                 aggregation: str = "mean",
                 side: str = "auto", progress: ProgressFn | None = None, cancel=None,
                 on_stage: StageFn | None = None, batch: bool = True) -> list[HandResult]:
        """The given hands of `image` → one `HandResult` each (stage 1, then stage 2 when loaded).

        `K` defaults to the image-size camera (DESIGN §3). Progress counts DDIM steps over all hands
        (stage 1's `steps`, then stage 2's `mesh_steps`, default `steps`); `cancel` is checked at every
        step. DDIM η: stage 1 `eta` (default: the model's own), stage 2 `mesh_eta`. Several hands run as
        one batch per stage (`core.multihand`; `batch=False`: one after the other)."""
        from core.geometry import intrinsics_from_size

        img = _rgb(image)
        check_choice("side", side, SIDES)
        self.decide_sides(img, detections, side)
        h, w = img.shape[:2]
        K = intrinsics_from_size(w, h) if K is None else np.asarray(K, np.float64)
        s2 = mesh_steps or steps
        per_hand = steps + (s2 if self.mesh is not None else 0)
        if batch and len(detections) > 1:
            return self._estimate_batch(img, detections, K, n=n, steps=steps, seed=seed, eta=eta, s2=s2,
                                        mesh_eta=mesh_eta, paper_samples=paper_samples, aggregation=aggregation,
                                        progress=progress, cancel=cancel, on_stage=on_stage)
        total = per_hand * len(detections)
        out = []
        for i, det in enumerate(detections):
            base = i * per_hand
            if on_stage:
                on_stage("joints")
            s1 = self.stage1.run_detection(det, K, n=n, steps=steps, seed=seed, eta=eta, aggregation=aggregation,
                                           progress=_offset(progress, base, total), cancel=cancel)
            result = HandResult(s1, timings={f"stage1_{k}": v for k, v in s1.timings.items()},
                                side=det.extra.get("side"))
            if self.mesh is not None:
                if on_stage:
                    on_stage("meshes")
                result.mesh = self.mesh.run_hand(img, s1, steps=s2, seed=seed, eta=mesh_eta,
                                                 paper_samples=paper_samples,
                                                 progress=_offset(progress, base + steps, total), cancel=cancel)
                result.timings.update(result.mesh.timings)
                result.params = result.mesh.params
            out.append(result)
        return out

    def _estimate_batch(self, img: np.ndarray, detections: Sequence[Detection], K: np.ndarray, *, n: int,
                        steps: int, seed: int, eta: float | None, s2: int, mesh_eta: float,
                        paper_samples: int | None, aggregation: str, progress: ProgressFn | None, cancel,
                        on_stage: StageFn | None) -> list[HandResult]:
        """`estimate` of several hands: stage 1 of all as one batch, then stage 2 of all as one batch."""
        from core.multihand import lift_hands, mesh_hands

        total = steps + (s2 if self.mesh is not None else 0)
        if on_stage:
            on_stage("joints")
        s1s = lift_hands(self.stage1, detections, K, n=n, steps=steps, seed=seed, eta=eta, aggregation=aggregation,
                         progress=_offset(progress, 0, total), cancel=cancel)
        out = [HandResult(s1, timings={f"stage1_{k}": v for k, v in s1.timings.items()}, side=det.extra.get("side"))
               for s1, det in zip(s1s, detections)]
        if self.mesh is not None:
            if on_stage:
                on_stage("meshes")
            meshes = mesh_hands(self.mesh, img, s1s, steps=s2, seed=seed, eta=mesh_eta, paper_samples=paper_samples,
                                progress=_offset(progress, steps, total), cancel=cancel)
            for result, mesh in zip(out, meshes):
                result.mesh = mesh
                result.params = mesh.params
                result.timings.update(mesh.timings)
        return out

    def run(self, image: np.ndarray, *, hand: str = "largest", detector: str = "palm", K: np.ndarray | None = None,
            side: str = "auto", on_stage: StageFn | None = None, **kw) -> list[HandResult]:
        """Detect, decide the sides, select (`hand`: largest | left | right | all, by the decided side) and
        `estimate` (its keyword arguments)."""
        from core.detector import select_hands

        check_choice("hand", hand, HAND_SELECTIONS)
        check_choice("side", side, SIDES)
        if on_stage:
            on_stage("detecting")
        t0 = time.perf_counter()
        dets = self.detect(image, detector, want_all=hand == "all")
        self.decide_sides(image, dets, side)
        dets = select_hands(dets, hand)
        t_det = time.perf_counter() - t0
        results = self.estimate(image, dets, K, side=side, on_stage=on_stage, **kw)
        for r in results:
            r.stage1.timings["detect_s"] = t_det
            r.timings["stage1_detect_s"] = t_det
        return results

    def decide_sides(self, image: np.ndarray, detections: Sequence[Detection], side: str = "auto") -> None:
        """Set each detection's side (`core.side`; what stage 1 mirrors by), kept in `det.extra["side"]`:
        'left' / 'right' force it; 'auto' decides from the evidence (one more detector call on the mirrored
        image) for the detections not decided yet."""
        from core.side import apply_side, decide_sides

        check_choice("side", side, SIDES)
        todo = [d for d in detections if side != "auto" or "side" not in d.extra]
        if todo:
            for d, decision in zip(todo, decide_sides(self.stage1.detector, _rgb(image), todo, side)):
                apply_side(d, decision)

    def decode_trajectory(self, result: HandResult, cancel=None) -> np.ndarray | None:
        """Decode a mesh result's stage-2 trajectory (x̂0 latents of every step) into meshes (S,N,V,3) in
        the photo's axes, store them as `result.mesh_trajectory_vertices` and return them (None without
        meshes). ~0.35 s for 50 × 10 meshes on 2 CPU cores; `cancel` is checked between batches."""
        latents = result.trajectory_latents_x0
        if latents is None or self.mesh is None:
            return None
        from core.joints import mirror_x

        s, k = latents.shape[:2]
        verts, _ = self.mesh.decode_latents(latents.reshape(s * k, -1), whitened=True, cancel=cancel)
        verts = verts.reshape(s, k, *verts.shape[1:])
        result.mesh_trajectory_vertices = mirror_x(verts) if result.handedness == "left" else verts
        return result.mesh_trajectory_vertices


    def trajectory_params(self, result: HandResult) -> dict[str, np.ndarray] | None:
        """Anny parameters of the mesh of every stage-2 DDIM step (the x̂0 latents): {'global_orient'
        (S,N,3), 'pose' (S,N,45), 'shape' (S,N,10)} of the right-hand model (a left hand's describe its
        mirror image, like `params`); stored as `result.trajectory_params` (npz `trajectory_param_*`).
        None without meshes or without the parameter head. ~1 ms per 50 meshes."""
        latents = result.trajectory_latents_x0
        if latents is None or self.mesh is None or self.mesh.param_head is None:
            return None
        from core.mesh.params import hypothesis_params

        s, k = latents.shape[:2]
        p = hypothesis_params(self.mesh.param_head, np.asarray(latents, np.float32).reshape(s * k, -1))
        result.trajectory_params = {name: v.reshape(s, k, -1) for name, v in p.items()}
        return result.trajectory_params


def _rgb(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3:
        raise InputError(f"expected an RGB image, got shape {img.shape}")
    return img


def _offset(progress: ProgressFn | None, base: int, total: int) -> ProgressFn | None:
    """A stage's own (done, total) progress → the whole call's."""
    if progress is None:
        return None
    return lambda done, _total: progress(base + done, total)
