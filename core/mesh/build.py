"""Build `resources/mesh/anny_hand_sampling.npz` from the Anny hand template (one-time, ~1 min).

    python -m core.mesh.build [--targets 400 200 100 50] [--spiral 9] [--samples 3000] [--regressor-only]

Prints the vertex counts per level and the joint-regressor error (mm) on held-out sampled hands.
`--regressor-only` refits the joint regressor (after a keypoint-definition change) and keeps the
decimation, spirals and sampling matrices, so trained autoencoder weights stay valid.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from core.mesh.sampling import RESOURCE, barycentric_matrix, save_sampling
from core.mesh.spiral import spiral_sequences


def decimate(vertices: np.ndarray, faces: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation to about `target` vertices (fast-simplification)."""
    import fast_simplification

    lo, hi = 0.0, 0.999
    best = None
    for _ in range(20):   # bisection on the reduction ratio to hit the vertex target
        r = (lo + hi) / 2
        v, f = fast_simplification.simplify(vertices.astype(np.float32), faces.astype(np.int32), target_reduction=r)
        used = np.unique(f)
        if best is None or abs(len(used) - target) < abs(len(best[0]) - target):
            best = (v, f)
        if len(used) > target:
            lo = r
        elif len(used) < target:
            hi = r
        else:
            break
    v, f = best
    used = np.unique(f)   # drop unreferenced vertices
    remap = -np.ones(len(v), np.int64)
    remap[used] = np.arange(len(used))
    return v[used].astype(np.float64), remap[f].astype(np.int64)


def fit_joint_regressor(verts: np.ndarray, joints: np.ndarray, template: np.ndarray, rest_joints: np.ndarray,
                        tip_vertices, n_candidates: int = 48) -> np.ndarray:
    """Non-negative, sum-to-one rows (21, V): tips one-hot; other keypoints NNLS over the vertices
    nearest to the keypoint at rest. verts (n,V,3), joints (n,21,3) in the same frame."""
    from scipy.optimize import nnls

    from core.joints import FINGERTIPS

    n, nv, _ = verts.shape
    rest_j = rest_joints
    reg = np.zeros((21, nv))
    for j in range(21):
        if j in FINGERTIPS:
            reg[j, tip_vertices[FINGERTIPS.index(j)]] = 1.0
            continue
        cand = np.argsort(np.linalg.norm(template - rest_j[j], axis=1))[:n_candidates]
        a = verts[:, cand, :].transpose(0, 2, 1).reshape(-1, len(cand)) * 1000.0  # mm
        b = joints[:, j, :].reshape(-1) * 1000.0
        big = 1e4
        a = np.vstack([a, big * np.ones((1, len(cand)))])
        b = np.concatenate([b, [big]])
        w, _ = nnls(a, b, maxiter=5000)
        reg[j, cand] = w / w.sum()
    return reg


def _fit_and_check_regressor(hand, template: np.ndarray, rest_joints: np.ndarray, n: int):
    """Fit on `n` sampled hands (canonical frame), print the error on 500 held-out ones."""
    import torch

    from core.hand.anny_hand import TIP_VERTICES
    from core.pose_sampler import sample_poses, sample_shapes

    rng = np.random.default_rng(123)
    pose, shape = sample_poses(n + 500, rng), sample_shapes(n + 500, rng)
    vs, js = [], []
    with torch.no_grad():
        for s in range(0, n + 500, 250):
            out = hand(None, torch.from_numpy(pose[s:s + 250]), torch.from_numpy(shape[s:s + 250]))
            vs.append(out.vertices.double().numpy())
            js.append(out.joints.double().numpy())
    vs, js = np.concatenate(vs), np.concatenate(js)
    reg = fit_joint_regressor(vs[:n], js[:n], template, rest_joints, TIP_VERTICES)
    err = np.linalg.norm(np.einsum("jv,nvc->njc", reg, vs[n:]) - js[n:], axis=-1) * 1000
    print(f"joint regressor on {len(vs) - n} held-out hands: mean {err.mean():.2f} mm, "
          f"max per joint {err.mean(0).max():.2f} mm, worst {err.max():.2f} mm")
    return reg, err


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, nargs="+", default=[400, 200, 100, 50])
    ap.add_argument("--spiral", type=int, default=9)
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--out", default=str(RESOURCE))
    ap.add_argument("--regressor-only", action="store_true", help="refit only the joint regressor in --out")
    args = ap.parse_args(argv)
    import torch

    from core.hand import load_hand_model

    t0 = time.time()
    torch.set_num_threads(1)
    hand = load_hand_model("anny")
    with torch.no_grad():
        rest = hand()
        template = rest.vertices[0].double().numpy()
        rest_joints = rest.joints[0].double().numpy()
    faces = hand.faces.astype(np.int64)
    if args.regressor_only:
        reg, err = _fit_and_check_regressor(hand, template, rest_joints, args.samples)
        with np.load(args.out, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        arrays.update(joint_regressor=reg.astype(np.float32), template=template.astype(np.float32),
                      meta_regressor_err_mm=np.asarray(err.mean()),
                      meta_regressor_command=np.asarray("python -m core.mesh.build " + " ".join(argv or sys.argv[1:])))
        np.savez_compressed(args.out, **arrays)
        print(f"rewrote the joint regressor in {args.out} ({time.time() - t0:.1f} s)")
        return 0
    level_v, level_f = [template], [faces]
    for tgt in args.targets:
        v, f = decimate(level_v[-1], level_f[-1], tgt)
        level_v.append(v)
        level_f.append(f)
    down = [barycentric_matrix(level_v[l + 1], level_v[l], level_f[l]) for l in range(len(args.targets))]
    up = [barycentric_matrix(level_v[l], level_v[l + 1], level_f[l + 1]) for l in range(len(args.targets))]
    spirals = [spiral_sequences(v, f, args.spiral) for v, f in zip(level_v, level_f)]
    print("levels:", [len(v) for v in level_v], f"({time.time() - t0:.1f} s)")
    for l in range(len(args.targets)):
        err = np.linalg.norm(up[l] @ (down[l] @ level_v[l]) - level_v[l], axis=1).mean() * 1000
        print(f"  level {l}: down→up round trip of the template {err:.2f} mm")

    reg, err = _fit_and_check_regressor(hand, template, rest_joints, args.samples)
    save_sampling(__import__("pathlib").Path(args.out), spirals=spirals, down=down, up=up, joint_regressor=reg,
                  template=template, level_faces=level_f,
                  meta={"targets": np.array(args.targets), "regressor_err_mm": err.mean(),
                        "command": "python -m core.mesh.build " + " ".join(argv or sys.argv[1:])})
    print(f"wrote {args.out} ({time.time() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
