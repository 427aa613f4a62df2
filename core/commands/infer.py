"""`pose-viewer infer IMAGE... --out DIR`: detect hands and estimate 3D joint hypotheses, headless.

For each input, `DIR/<image stem>/result.npz` holds (stage 1):
  keypoints2d (21,2) px · keypoints2d_score (21,) · hand_score · handedness ('left'|'right') ·
  K (3,3) (from the image size when unknown: focal = max(w,h), centre principal point) ·
  image_size (w,h) · box (4,) crop box px · joint_hypotheses (N,21,3) metres, root-relative, camera
  axes · joints (21,3) aggregate (mean of the hypotheses, paper) · cam_t (3,) so that joints + cam_t
  projects onto the keypoints · trajectory_joints_xt (S+1,N,21,3) / trajectory_joints_x0 (S,N,21,3) /
  trajectory_timesteps (S,) the recorded DDIM trajectory · n_hands, hand_index ·
  side ('left'|'right', = handedness, the side used) · side_confidence (P of that side) ·
  side_decided_by ('label' | 'mirror-check' | 'chirality' | 'forced'; `--side`, core/side.py) ·
  side_label / side_label_confidence (the detector's own handedness label and its confidence) ·
  side_view_vote (in [-1, 1]: the views' chirality vote, +1 = every view says right; when the views voted),
  side_view_log_odds (the views' handedness outputs, mean log-odds of right; when the views voted).
Stage 2 (meshes, core/cascade.py; when its weights are shipped, or with `--stage 2`) adds:
  vertex_hypotheses (N,V,3) one mesh per joint hypothesis · vertices (V,3) the paper aggregate ·
  faces (F,3) · mesh_joint_hypotheses (N,21,3) / mesh_joints (21,3) regressed from the meshes (same
  root-relative camera-axes frame as `joints`) · mesh_cam_t (3,) so that vertices + mesh_cam_t
  overlays the image · trajectory_mesh_latents_xt / _x0 (stage-2 DDIM trajectory as AE latents) ·
  stage = 2; and writes DIR/<stem>/mesh.<fmt> (--format obj|ply|glb; camera frame) and, with
  --save-hypotheses, mesh_hyp_000.<fmt> ….
With the parameter head shipped (core/mesh/params.py, issue 25), stage 2 also adds the Anny parameters
(right-hand model; a left hand's describe its mirror image, as `side` says): param_hypotheses_global_orient
(N,3) · param_hypotheses_pose (N,45) · param_hypotheses_shape (N,10) · param_global_orient (3,) /
param_pose (45,) / param_shape (10,) the aggregate's · and their Anny meshes, the other mesh variant
(root-relative, same frame as `vertices`): param_vertex_hypotheses (N,V,3) · param_vertices (V,3) ·
param_joint_hypotheses (N,21,3) · param_joints (21,3). `--pose-files` writes each hypothesis as a pose
file (DIR/<stem>/poses/hypothesis_000.npz …, aggregate.npz) that `pose-viewer` and `complete` open.
`--trajectory-params` adds the Anny parameters of every stage-2 DDIM step's x̂0 meshes:
trajectory_param_global_orient (S,N,3) · trajectory_param_pose (S,N,45) · trajectory_param_shape (S,N,10).
`--refine` (core/refine.py) refines every hand's hypotheses and aggregate against its 2D keypoints with the
DPoser prior and adds refined_hypotheses_global_orient / _pose / _shape, refined_global_orient / _pose / _shape,
their Anny meshes and joints (refined_vertex_hypotheses, refined_vertices, refined_joint_hypotheses,
refined_joints: root-relative, same frame as `vertices`), refined_hypotheses_transl (N,3) / refined_transl (3,)
(refined mesh + transl overlays the image), refined_reprojection_px_before / _after ((N+1,) mean keypoint
distance, the aggregate last) and refined_iters; it writes DIR/<stem>/mesh_refined.<fmt> too (and
mesh_refined_hyp_000.<fmt> … with --save-hypotheses).
With `--hand all`, further hands go to `result_hand1.npz`, `result_hand2.npz`, … (meshes to
`mesh_hand1.<fmt>`, …). Every key is `core.pipeline.HandResult.to_npz_dict` plus image_size, n_hands,
hand_index, seed, steps; `stage` is 1 or 2. Images run through the one image pipeline (`core.pipeline`).
Exit 0 when every input succeeded, else 2 with one `error: <path>: <reason>` line per failed input.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import TYPE_CHECKING

import numpy as np

from core.errors import InputError

if TYPE_CHECKING:
    from core.pipeline import HandResult


def register(sub: argparse._SubParsersAction) -> None:
    from core.cli import add_common_options

    p = sub.add_parser("infer", help="estimate 3D hand joint hypotheses from images",
                       description="Detect hands (MediaPipe) and lift them to N 3D joint hypotheses "
                                   "(joint diffusion, DDIM). Writes DIR/<image stem>/result.npz per input.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="input image file(s)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("-n", "--num-hypotheses", type=int, default=50, dest="n", help="hypotheses per hand (default 50)")
    p.add_argument("--steps", type=int, default=10, help="DDIM steps, 1-50 (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--hand", default="largest", choices=["largest", "left", "right", "all"],
                   help="which detected hand(s) to process, by their decided side (default: largest)")
    p.add_argument("--detector", default="auto", choices=["palm", "search", "auto"],
                   help="hand finder: palm (MediaPipe's palm detector), search (its landmark model over a "
                        "grid of crops, core/hand_search.py) or auto (palm first; search when it finds "
                        "nothing or with --hand all). Default auto")
    p.add_argument("--side", default="auto", choices=["auto", "left", "right"],
                   help="the hand's side: auto decides from the evidence (detector label and confidence, a "
                        "mirror check, the chirality of the landmark model's 3D landmarks over several views of "
                        "the hand; core/side.py); left / right force it")
    p.add_argument("--stage", type=int, choices=[1, 2], default=None,
                   help="1: joints only; 2: joints + meshes (default 2 when the mesh weights are shipped, else 1)")
    p.add_argument("--eta", type=float, default=None, help="DDIM η of stage 1 (default: the model's)")
    p.add_argument("--format", default="obj", choices=["obj", "ply", "glb"],
                   help="mesh file format of mesh.<fmt> (default obj)")
    p.add_argument("--save-hypotheses", action="store_true",
                   help="also write every mesh hypothesis (mesh_hyp_000.<fmt> …)")
    p.add_argument("--pose-files", action="store_true",
                   help="also write every hypothesis's Anny parameters as a pose file that pose-viewer and "
                        "pose-viewer complete open (poses/hypothesis_000.npz …, poses/aggregate.npz)")
    p.add_argument("--trajectory-params", action="store_true",
                   help="also the Anny parameters of every stage-2 DDIM step's meshes (trajectory_param_* keys)")
    p.add_argument("--refine", action="store_true",
                   help="refine each hand's hypotheses against its 2D keypoints with the DPoser prior "
                        "(refined_* keys, mesh_refined.<fmt>; needs the mesh stage)")
    p.add_argument("--refine-iters", type=int, default=None,
                   help="iterations of the refinement (default: core.refine's)")
    add_common_options(p)
    p.set_defaults(func=run)


def _validate(args: argparse.Namespace) -> None:
    if not 1 <= args.n <= 1000:
        raise InputError(f"-n must be in [1, 1000], got {args.n}")
    if not 1 <= args.steps <= 50:
        raise InputError(f"--steps must be in [1, 50], got {args.steps}")
    if args.refine and args.stage == 1:
        raise InputError("--refine needs the mesh stage (it refines the meshes' parameters); drop --stage 1")
    if args.refine_iters is not None and not 1 <= args.refine_iters <= 1000:
        raise InputError(f"--refine-iters must be in [1, 1000], got {args.refine_iters}")


def _save_mesh_set(folder: pathlib.Path, stem: str, fmt: str, faces: np.ndarray, aggregate: np.ndarray,
                   hypotheses: np.ndarray | None = None) -> list[pathlib.Path]:
    from core.io.export import save_mesh

    paths = [save_mesh(folder / f"{stem}.{fmt}", aggregate, faces)]
    for i, v in enumerate(() if hypotheses is None else hypotheses):
        paths.append(save_mesh(folder / f"{stem}_hyp_{i:03d}.{fmt}", v, faces))
    return paths


def write_meshes(result: HandResult, folder: pathlib.Path, fmt: str = "obj", save_hypotheses: bool = False,
                 stem: str = "mesh") -> list[pathlib.Path]:
    """The aggregate mesh (`<stem>.<fmt>`) and, with `save_hypotheses`, every hypothesis
    (`<stem>_hyp_000.<fmt>` …) of a mesh result, in the camera frame (vertices + mesh_cam_t) so they
    overlay the image. Returns the written paths."""
    t = result.mesh_cam_t
    return _save_mesh_set(folder, stem, fmt, result.faces, result.vertices + t,
                          result.vertex_hypotheses + t if save_hypotheses else None)


def write_refined_meshes(result: HandResult, folder: pathlib.Path, fmt: str = "obj", save_hypotheses: bool = False,
                         stem: str = "mesh_refined") -> list[pathlib.Path]:
    """The same for `result.refined`: each refined mesh at its own camera translation."""
    ref = result.refined
    return _save_mesh_set(folder, stem, fmt, result.faces, ref.params.vertices + ref.transl,
                          ref.params.hyp_vertices + ref.hyp_transl[:, None, :] if save_hypotheses else None)


def write_pose_files(result: HandResult, folder: pathlib.Path) -> list[pathlib.Path]:
    """Every hypothesis's Anny parameters (`hypothesis_000.npz` …) and the aggregate's (`aggregate.npz`)
    as pose files (`core.io.poses.pose_file_arrays`) in `folder`; nothing without parameters."""
    from core.io.atomic import ensure_folder, write_npz
    from core.io.poses import pose_file_arrays

    if result.params is None:
        return []
    ensure_folder(folder)
    paths = [write_npz(folder / f"hypothesis_{i:03d}.npz", pose_file_arrays(result.params, i, result.handedness))
             for i in range(result.params.hyp_pose.shape[0])]
    paths.append(write_npz(folder / "aggregate.npz", pose_file_arrays(result.params, None, result.handedness)))
    return paths


def run(args: argparse.Namespace) -> int:
    from core.cli import run_each
    from core.device import pick_device
    from core.io.atomic import ensure_folder
    from core.io.export import save_npz
    from core.io.images import load_image
    from core.pipeline import ImagePipeline

    _validate(args)
    try:
        device = pick_device(args.device)
    except (RuntimeError, ValueError) as exc:
        raise InputError(str(exc)) from exc
    out_root = pathlib.Path(args.out)
    pipeline = ImagePipeline.load(device, mesh={1: False, 2: True}.get(args.stage))
    if pipeline.note:
        print(f"note: {pipeline.note}; running stage 1 (joints) only", file=sys.stderr)
    refiner = _refiner(pipeline, args) if args.refine else None
    used: dict[str, int] = {}

    def handle(path: str) -> None:
        t0 = time.perf_counter()
        image = load_image(path)
        h, w = image.shape[:2]
        results = pipeline.run(image, hand=args.hand, detector=args.detector, side=args.side, n=args.n,
                               steps=args.steps, seed=args.seed, eta=args.eta)
        stem = pathlib.Path(path).stem or "image"
        k = used.get(stem, 0)
        used[stem] = k + 1
        folder = out_root / (stem if k == 0 else f"{stem}_{k + 1}")
        ensure_folder(folder)   # one `cannot write <folder>: <reason>` line if it cannot be made
        for i, r in enumerate(results):
            if refiner is not None:
                r.refined = refiner(r)
            if args.trajectory_params:
                pipeline.trajectory_params(r)
            arrays = r.to_npz_dict()
            arrays.update(image_size=np.array([w, h], np.int32), n_hands=np.int32(len(results)),
                          hand_index=np.int32(i), seed=np.int32(args.seed), steps=np.int32(args.steps))
            if r.has_mesh:
                write_meshes(r, folder, args.format, args.save_hypotheses, "mesh" if i == 0 else f"mesh_hand{i}")
            if r.refined is not None:
                write_refined_meshes(r, folder, args.format, args.save_hypotheses,
                                     "mesh_refined" if i == 0 else f"mesh_refined_hand{i}")
            if args.pose_files:
                write_pose_files(r, folder / ("poses" if i == 0 else f"poses_hand{i}"))
            save_npz(folder / ("result.npz" if i == 0 else f"result_hand{i}.npz"), **arrays)
        dt = time.perf_counter() - t0
        sides = ", ".join(r.handedness for r in results)
        refined = "".join(f", refined {q.reprojection_px_before[-1]:.1f} -> {q.reprojection_px_after[-1]:.1f} px"
                          for q in (r.refined for r in results) if q is not None)
        print(f"{path}: {len(results)} hand(s) ({sides}), {args.n} hypotheses{refined}, {dt:.2f} s "
              f"-> {folder}/result.npz")

    return run_each(args.images, handle, args.debug)


def _refiner(pipeline, args: argparse.Namespace):
    """HandResult → Refinement with the shipped DPoser prior and the mesh stage's Anny hand."""
    from core.errors import WeightsError
    from core.prior import load_prior
    from core.refine import DEFAULT_REFINE_ITERS, refine_hand

    if not pipeline.has_mesh or pipeline.mesh.param_head is None:
        raise WeightsError("--refine needs the mesh stage and its parameter head: "
                           + (pipeline.note or "the parameter head is not shipped"))
    prior, hand = load_prior(), pipeline.mesh.param_hand
    iters = args.refine_iters or DEFAULT_REFINE_ITERS
    return lambda r: refine_hand(prior, hand, r, iters=iters, seed=args.seed)
