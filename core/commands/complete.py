"""`pose-viewer complete POSE... --out DIR`: complete hidden joints under the DPoser prior, headless.

POSE is our `.npz` (pose parameters and/or joints) or a JSON of 21×3 joints in metres (any real hand,
any bone lengths; optional `"side": "left"|"right"`, default right — a left hand is mirrored in and
out). With joints, the hand's orientation, position, scale and shape are fitted together with the pose
(loss on visible joints only); with pose parameters only, the visible pose dimensions are held and the
dimensions that move hidden joints are completed. `--mask` lists the HIDDEN joints (MediaPipe order).

Each input gives `DIR/<stem>.npz` with keys: joints (S,21,3) metres in the input's frame, vertices
(S,V,3), faces (F,3), pose (S,45) (right-hand model parameters), mask (21,) bool (True = hidden),
observed (21,3), t_schedule (iters,), plus global_orient (S,3), shape (S,10), scale (S,), transl (S,3),
trajectory_pose (iters+1,S,45), trajectory_joints (iters+1,S,21,3), side, prior, schedule.
Exit 0 when every input succeeded, else 2 with one `error: <path>: <reason>` line per failed input.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

from core.joints import NUM_JOINTS
from core.prior.choices import DEFAULT_HYPOTHESES, DEFAULT_ITERS, PRIORS, SCHEDULES, TASK_RANGES


def register(sub: argparse._SubParsersAction) -> None:
    from core.cli import add_common_options

    p = sub.add_parser("complete", help="complete hidden hand joints with the DPoser prior",
                       description="Complete masked joints of 3D hand poses with S hypotheses (DPoser-hand "
                                   "test-time optimisation). Writes DIR/<stem>.npz per input.")
    p.add_argument("poses", nargs="+", metavar="POSE", help="pose file(s): our .npz or a joints .json")
    p.add_argument("--out", required=True, help="output folder")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--mask", default=None, help="comma-separated indices of the HIDDEN joints, e.g. 4,8,12,16,20")
    g.add_argument("--mask-preset", default=None,
                   help="fingertips | finger:thumb|index|middle|ring|pinky | random:FRACTION (e.g. random:0.6)")
    t_max, t_min = TASK_RANGES["completion"]
    p.add_argument("-n", "--num-hypotheses", type=int, default=DEFAULT_HYPOTHESES, dest="n",
                   help=f"hypotheses (default {DEFAULT_HYPOTHESES})")
    p.add_argument("--prior", default=PRIORS[0], choices=PRIORS, help=f"regulariser (default {PRIORS[0]})")
    p.add_argument("--schedule", default=SCHEDULES[0], choices=SCHEDULES,
                   help=f"timestep schedule (default {SCHEDULES[0]})")
    p.add_argument("--t-max", type=float, default=t_max, help=f"truncated schedule start (default {t_max})")
    p.add_argument("--t-min", type=float, default=t_min, help=f"truncated schedule end (default {t_min})")
    p.add_argument("--iters", type=int, default=None, help=f"optimisation iterations (default {DEFAULT_ITERS})")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_common_options(p)
    p.set_defaults(func=run)


def _validate(args: argparse.Namespace) -> None:
    from core.errors import InputError

    if not 1 <= args.n <= 200:
        raise InputError(f"-n must be in [1, 200], got {args.n}")
    if args.iters is not None and not 1 <= args.iters <= 10000:
        raise InputError(f"--iters must be in [1, 10000], got {args.iters}")
    for name in ("t_max", "t_min"):
        v = getattr(args, name)
        if not 0 <= v <= 1:
            raise InputError(f"--{name.replace('_', '-')} must be in [0, 1], got {v}")
    if args.t_min > args.t_max:
        raise InputError(f"--t-min ({args.t_min}) must not exceed --t-max ({args.t_max})")


_CACHE: dict = {}


def _hand():
    """One Anny hand per process (building it takes a few seconds)."""
    if "hand" not in _CACHE:
        from core.hand import load_hand_model

        _CACHE["hand"] = load_hand_model("anny")
    return _CACHE["hand"]


def run(args: argparse.Namespace) -> int:
    import torch

    _validate(args)
    # The loop runs small-batch ops (S hypotheses): one thread is as fast on an idle machine and much
    # faster on a loaded one (measured: 1.2 s vs 9-30 s per completion with 2 threads at load 3.5).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> int:
    import torch

    from core.cli import run_each
    from core.errors import InputError
    from core.io.export import save_npz
    from core.io.poses import load_pose_file, parse_mask
    from core.joints import mirror_faces, mirror_x
    from core.prior.tto import Schedule, TTOConfig, complete_pose, fit_joints

    cli_mask = parse_mask(args.mask, args.mask_preset, args.seed)
    schedule = Schedule(args.schedule, args.t_max, args.t_min)
    cfg = TTOConfig(prior=args.prior, schedule=schedule, seed=args.seed)
    if args.iters is not None:
        cfg.iters = args.iters
    prior = None
    if args.prior == "dposer":
        from core.prior.model import load_prior
        prior = load_prior()  # WeightsError → one error line, exit 2
    hand = _hand()
    out_root = pathlib.Path(args.out)

    def handle(path: str) -> None:
        t0 = time.perf_counter()
        pf = load_pose_file(path)
        mask = cli_mask if cli_mask is not None else (pf.mask if pf.mask is not None else np.zeros(NUM_JOINTS, bool))
        if mask.all():
            raise InputError("every joint is hidden: nothing to complete from")
        left = pf.side == "left"
        if pf.joints is not None:
            observed = np.asarray(pf.joints, np.float32)
            obs_right = mirror_x(observed) if left else observed
            shape = None
            if pf.shape is not None and pf.model == "anny" and pf.shape.shape == (hand.shape_dim,):
                shape = pf.shape
            res = fit_joints(prior, hand, obs_right, mask, n=args.n, cfg=cfg, shape=shape)
        else:
            if pf.model != "anny":
                raise InputError(f"pose parameters of model '{pf.model}' need that hand model "
                                 "(only 'anny' is available here); give joints instead")
            shape = pf.shape
            if shape is not None and shape.shape != (hand.shape_dim,):
                raise InputError(f"'shape' has {shape.size} values, the Anny hand takes {hand.shape_dim}")
            with torch.no_grad():
                obs_right = hand.joints(torch.from_numpy(pf.global_orient[None]), torch.from_numpy(pf.pose[None]),
                                        None if shape is None else torch.from_numpy(shape[None]))[0].numpy()
            observed = mirror_x(obs_right) if left else obs_right
            res = complete_pose(prior, pf.pose, mask, n=args.n, cfg=cfg, hand=hand,
                                global_orient=pf.global_orient, shape=shape)
        verts = res.vertices(hand)
        joints = res.joints
        faces = hand.faces
        traj_j = res.traj_joints
        if left:
            joints, verts, faces = mirror_x(joints), mirror_x(verts), mirror_faces(faces)
            traj_j = None if traj_j is None else mirror_x(traj_j)
        arrays = dict(joints=joints.astype(np.float32), vertices=verts.astype(np.float32),
                      faces=faces.astype(np.int64), pose=res.pose, mask=mask.astype(bool),
                      observed=np.asarray(observed, np.float32), t_schedule=res.t_schedule.astype(np.float32),
                      global_orient=res.global_orient, shape=res.shape, scale=res.scale, transl=res.transl,
                      side=np.array(pf.side), prior=np.array(args.prior), schedule=np.array(args.schedule))
        if res.traj_pose is not None:
            arrays["trajectory_pose"] = res.traj_pose.astype(np.float32)
        if traj_j is not None:
            arrays["trajectory_joints"] = traj_j.astype(np.float32)
        dest = out_root / f"{pathlib.Path(path).stem}.npz"
        save_npz(dest, **arrays)
        print(f"{path}: {args.n} completions of {int(mask.sum())} hidden joints -> {dest} "
              f"({time.perf_counter() - t0:.2f} s)", file=sys.stderr)

    return run_each(args.poses, handle, getattr(args, "debug", False))
