"""Evaluation of the shipped models; writes its section of docs/results.md (later issues add theirs).

Stage 1 (joint diffusion), `python -m training.evaluate stage1 [--real-data ../shared/realdata] [--write]`:
- Synthetic held-out split (fixed seed, never seen in training; detector-like 2D noise as in
  training): PA-MPJPE (mm) of mean-of-N and best-of-N for N = 1, 10, 50, 100, 200 (paper Table 3
  layout), per-joint spread of the 50 hypotheses split by self-occlusion (capsule-hand test from the
  true 3D joints, `core.occlusion.joint_occlusion`).
- Real data (when the folder exists): MediaPipe 2D keypoints of the 29 annotated real images →
  our lifting (mean-of-50, best-of-50, JPMA) vs MediaPipe's own 3D world landmarks, PA-MPJPE on the
  same images; per-finger spread; time per image.
`--write` replaces the stage-1 section of docs/results.md (between its markers).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import sys
import time

import numpy as np
import torch

from core.metrics import apd, pa_mpjpe, procrustes_align
from core.nets.joint_diffusion import JOINT_SCALE
from training.results_doc import RESULTS, write_section

TEST_SEED = 424_242
FINGER_JOINTS = {"thumb": [1, 2, 3, 4], "index": [5, 6, 7, 8], "middle": [9, 10, 11, 12],
                 "ring": [13, 14, 15, 16], "pinky": [17, 18, 19, 20]}


# --- synthetic split ---------------------------------------------------------------------------------

def synthetic_split(n: int, seed: int = TEST_SEED, occlusion_noise: float = 1.5):
    """Held-out samples (LiftingBatcher dict, with capsule-hand occlusion flags `occluded`)."""
    from training.data.lifting import LiftingBatcher, make_joint_table

    table = make_joint_table(n, seed)
    return LiftingBatcher(table, seed=seed, occlusion_noise=occlusion_noise).batch(n, idx=torch.arange(n))


def spread_by_occlusion(spread: np.ndarray, occ: np.ndarray) -> dict:
    """Spread (S,21) and occlusion flags (S,21): pooled means, and the same joint occluded vs visible
    (averaged over joints with ≥ 3 samples of each; controls for the distance from the wrist)."""
    paired = [(spread[occ[:, j], j].mean(), spread[~occ[:, j], j].mean()) for j in range(1, 21)
              if occ[:, j].sum() >= 3 and (~occ[:, j]).sum() >= 3]
    paired = np.array(paired) if paired else np.full((1, 2), np.nan)
    return {"spread_occluded_mm": float(spread[occ].mean()) if occ.any() else float("nan"),
            "spread_visible_mm": float(spread[~occ].mean()),
            "occluded_fraction": float(occ.mean()),
            "spread_same_joint_occluded_mm": float(paired[:, 0].mean()),
            "spread_same_joint_visible_mm": float(paired[:, 1].mean()),
            "joints_with_higher_spread_when_occluded": f"{int((paired[:, 0] > paired[:, 1]).sum())}/{len(paired)}"}


@torch.no_grad()
def sample_hyps(lifter, rays, n_hyp: int, steps: int, eta: float, chunk: int = 2000, seed: int = 0):
    """(B, n_hyp, 21, 3) metres from noisy rays (B,21,2), conditioned as at inference (an occlusion-aware
    lifter estimates its flags from a first pass, never from the ground truth)."""
    outs = []
    per = max(1, chunk // n_hyp)
    for i in range(0, len(rays), per):
        outs.append(lifter.sample_rays(rays[i:i + per], n_hyp, steps, eta, seed=seed + i).numpy() * JOINT_SCALE)
    return np.concatenate(outs)


def eval_synthetic(lifter, n: int, steps: int, eta: float, ns=(1, 10, 50, 100, 200)) -> dict:
    b = synthetic_split(n)
    t0 = time.perf_counter()
    hyps = sample_hyps(lifter, b["rays"], max(ns), steps, eta)
    hyps = hyps - hyps[:, :, :1]                                 # root-relative, as the pipeline reports
    dt = time.perf_counter() - t0
    gt = b["joints"].numpy()
    per = pa_mpjpe(hyps, gt[:, None]) * 1000                    # (B, Nmax)
    table = {}
    for k in ns:
        mean = pa_mpjpe(hyps[:, :k].mean(1), gt) * 1000
        table[k] = {"mean": float(mean.mean()), "best": float(per[:, :k].min(1).mean())}
    h50 = hyps[:, :50]
    spread = np.linalg.norm(h50 - h50.mean(1, keepdims=True), axis=-1).mean(1) * 1000   # (B,21) mm
    occ = b["occluded"].numpy()
    return {**spread_by_occlusion(spread, occ),
            "spread_per_joint_mm": spread.mean(0).tolist(),"n_samples": n, "steps": steps, "eta": eta, "table": table,
            "err_occluded_mm": float((np.linalg.norm(h50.mean(1) - gt, axis=-1) * 1000)[occ].mean()),
            "apd50_mm": float(np.mean([apd(h) for h in h50[:50]]) * 1000),
            "seconds_per_sample_maxN": dt / n}


# --- real data ---------------------------------------------------------------------------------------

def eval_real(lifter, root: pathlib.Path, n_hyp: int, steps: int, eta: float, side: str = "detected") -> dict:
    """MediaPipe 2D → our lifting vs MediaPipe 3D on the annotated real images (PA-MPJPE mm)."""
    from core.detector import HandDetector
    from core.io.images import load_image
    from core.stage1 import Stage1Estimator, aggregate
    from core.occlusion import joint_occlusion

    ann = json.loads((root / "annotations.json").read_text())
    est = Stage1Estimator(lifter=lifter, detector=HandDetector())
    rows = []
    for s in ann["samples"]:
        img = load_image(root / s["image"])
        K = np.array(s["K"], np.float64)
        hand = s["hands"][0]
        gt = np.array(hand["xyz_cam_mm"], np.float64)
        t0 = time.perf_counter()
        dets = est.detector.detect(img)
        t_det = time.perf_counter() - t0
        det = dets[0]
        detected_side = det.handedness
        if side == "annotated":
            det.handedness = hand["side"]
        r = est.run_detection(det, K, n=n_hyp, steps=steps, seed=0, eta=eta)
        t_all = time.perf_counter() - t0
        hyps = r.joint_hypotheses * 1000
        per = pa_mpjpe(hyps, gt[None])
        jp = aggregate(r.joint_hypotheses, "jpma", det.keypoints2d, K, r.cam_t) * 1000
        spread = np.linalg.norm(hyps - hyps.mean(0), axis=-1).mean(0)   # (21,) mm
        reproj = np.linalg.norm(
            (lambda p: p[:, :2] / p[:, 2:])((r.joints + r.cam_t) @ K.T) - det.keypoints2d, axis=1).mean()
        mp3d = det.world_landmarks * 1000
        nw = slice(1, 21)   # diagnostic: without the wrist (its definition differs most between datasets)
        occ = joint_occlusion(torch.tensor(gt[None] / 1000, dtype=torch.float32))[0].numpy()
        rows.append({"occluded": occ.tolist(), "per_joint": np.linalg.norm(procrustes_align(hyps.mean(0), gt) - gt, axis=-1).tolist(),
                     "per_joint_mp3d": np.linalg.norm(procrustes_align(mp3d, gt) - gt, axis=-1).tolist(),
                     "mean_nowrist": float(pa_mpjpe(hyps.mean(0)[nw], gt[nw])),
                     "mp3d_nowrist": float(pa_mpjpe(mp3d[nw], gt[nw])),
                     "image": s["image"], "side_detected": detected_side, "side_used": det.handedness,
                     "mean": float(pa_mpjpe(hyps.mean(0), gt)), "best": float(per.min()),
                     "jpma": float(pa_mpjpe(jp, gt)), "mediapipe3d": float(pa_mpjpe(det.world_landmarks * 1000, gt)),
                     "spread": spread.tolist(), "reproj_px": float(reproj),
                     "kp2d_err_px": float(np.linalg.norm(det.keypoints2d - np.array(hand["uv_px"]), axis=1).mean()),
                     "t_detect_s": t_det, "t_total_s": t_all})
    est.detector.close()   # before interpreter teardown, where MediaPipe's own __del__ prints a trace
    def m(k):
        return float(np.mean([r[k] for r in rows]))
    spread = np.array([r["spread"] for r in rows]).mean(0)
    return {"n_images": len(rows), "n_hyp": n_hyp, "steps": steps, "eta": eta, "side": side,
            "mean": m("mean"), "best": m("best"), "jpma": m("jpma"), "mediapipe3d": m("mediapipe3d"),
            "median_mean": float(np.median([r["mean"] for r in rows])),
            "median_mediapipe3d": float(np.median([r["mediapipe3d"] for r in rows])),
            "wins": int(sum(r["mean"] < r["mediapipe3d"] for r in rows)),
            "mean_nowrist": m("mean_nowrist"), "mp3d_nowrist": m("mp3d_nowrist"),
            "per_joint": np.array([r["per_joint"] for r in rows]).mean(0).tolist(),
            "per_joint_mp3d": np.array([r["per_joint_mp3d"] for r in rows]).mean(0).tolist(),
            "reproj_px": m("reproj_px"), "kp2d_err_px": m("kp2d_err_px"),
            "t_detect_s": float(np.median([r["t_detect_s"] for r in rows])),
            "t_total_s": float(np.median([r["t_total_s"] for r in rows])),
            "spread_per_finger_mm": {f: float(spread[j].mean()) for f, j in FINGER_JOINTS.items()},
            "spread_wrist_mm": float(spread[0]),
            "wrong_side": int(sum(r["side_detected"] != "left" for r in rows)),
            "occlusion": spread_by_occlusion(np.array([r["spread"] for r in rows]),
                                             np.array([r["occluded"] for r in rows], bool)),
            "rows": rows}


# --- report ------------------------------------------------------------------------------------------

def markdown(syn: dict | None, real: list[dict], cmd: str, manifest: dict) -> str:
    L = ["<!-- stage1:begin -->", "## Stage 1 — joint diffusion (2D keypoints → 3D joint hypotheses)", "",
         f"Command: `{cmd}`  ", f"Model: `resources/models/joint_diffusion.safetensors` "
         f"({manifest.get('date', '?')}; config {json.dumps(manifest.get('config', {}).get('net', {}))}; "
         f"schedule {manifest.get('config', {}).get('schedule')}).  ",
         f"Trained with: `{manifest.get('train_command', '?')}`", ""]
    if syn:
        L += [f"### Synthetic held-out split ({syn['n_samples']} samples, seed {TEST_SEED}, "
              f"detector-like 2D noise, DDIM {syn['steps']} steps, η = {syn['eta']})", "",
              "PA-MPJPE (mm), paper Table 3 layout:", "",
              "| N | " + " | ".join(str(k) for k in syn["table"]) + " |",
              "|---|" + "---|" * len(syn["table"]),
              "| mean-of-N | " + " | ".join(f"{v['mean']:.2f}" for v in syn["table"].values()) + " |",
              "| best-of-N | " + " | ".join(f"{v['best']:.2f}" for v in syn["table"].values()) + " |", ""]
        t50 = syn["table"].get(50) or syn["table"].get("50")
        if t50:
            L.append(f"best-of-50 is {100 * (1 - t50['best'] / t50['mean']):.1f} % below mean-of-50.")
        L += ["", f"Spread of the 50 hypotheses (mean distance to their mean, mm): self-occluded joints "
              f"**{syn['spread_occluded_mm']:.2f}**, visible joints **{syn['spread_visible_mm']:.2f}** "
              f"({100 * syn['occluded_fraction']:.0f} % of joints occluded). Same joint, occluded vs visible samples "
              f"(averaged over joints 1-20, controls for the distance from the wrist): "
              f"**{syn['spread_same_joint_occluded_mm']:.2f}** vs **{syn['spread_same_joint_visible_mm']:.2f}** mm; "
              f"higher when occluded for {syn['joints_with_higher_spread_when_occluded']} joints. "
              f"APD(50) {syn['apd50_mm']:.2f} mm.", "",
              "Spread per joint (mm, joints 0-20): " + " ".join(f"{v:.1f}" for v in syn["spread_per_joint_mm"]), ""]
    for r in real:
        L += [f"### Real annotated images ({r['n_images']} × 256² left hands, hgc_realworld; MediaPipe 2D → ours; "
              f"N = {r['n_hyp']}, {r['steps']} DDIM steps, η = {r['eta']}, handedness: {r['side']})", "",
              "| PA-MPJPE (mm) | mean | median |", "|---|---|---|",
              f"| MediaPipe 3D world landmarks | {r['mediapipe3d']:.2f} | {r['median_mediapipe3d']:.2f} |",
              f"| ours, mean-of-{r['n_hyp']} (paper aggregation) | {r['mean']:.2f} | {r['median_mean']:.2f} |",
              f"| ours, JPMA (per-joint reprojection) | {r['jpma']:.2f} | |",
              f"| ours, best-of-{r['n_hyp']} (oracle) | {r['best']:.2f} | |",
              f"| *diagnostic: 20 joints without the wrist* — MediaPipe 3D / ours mean | "
              f"{r['mp3d_nowrist']:.2f} / {r['mean_nowrist']:.2f} | |", "",
              "Per-joint error after alignment (mm, joints 0-20), ours: "
              + " ".join(f"{v:.1f}" for v in r["per_joint"]) + "  ",
              "MediaPipe 3D: " + " ".join(f"{v:.1f}" for v in r["per_joint_mp3d"]), "",
              f"Ours beats MediaPipe 3D on {r['wins']}/{r['n_images']} images; best-of-{r['n_hyp']} is "
              f"{100 * (1 - r['best'] / r['mean']):.1f} % below the mean. MediaPipe 2D error vs the annotation "
              f"{r['kp2d_err_px']:.1f} px; reprojection of joints + cam_t onto the keypoints {r['reproj_px']:.1f} px; "
              f"{r['wrong_side']} image(s) detected as the wrong side. Self-occlusion from the annotated 3D "
              f"joints (capsule hand; {100 * r['occlusion']['occluded_fraction']:.0f} % of joints): spread occluded "
              f"**{r['occlusion']['spread_occluded_mm']:.1f}** vs visible **{r['occlusion']['spread_visible_mm']:.1f}** mm; "
              f"same joint occluded vs visible **{r['occlusion']['spread_same_joint_occluded_mm']:.1f}** vs "
              f"**{r['occlusion']['spread_same_joint_visible_mm']:.1f}** mm (higher when occluded for "
              f"{r['occlusion']['joints_with_higher_spread_when_occluded']} joints). Spread per finger (mm): "
              + ", ".join(f"{k} {v:.1f}" for k, v in r["spread_per_finger_mm"].items())
              + f", wrist {r['spread_wrist_mm']:.1f}.  ",
              f"Time per image (median, this 2-core CPU, shared): detection {1000 * r['t_detect_s']:.0f} ms, "
              f"detection + {r['n_hyp']} hypotheses × {r['steps']} steps {1000 * r['t_total_s']:.0f} ms.", ""]
    L.append("<!-- stage1:end -->")
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("stage1")
    p.add_argument("--real-data", type=pathlib.Path, default=pathlib.Path("../shared/realdata"))
    p.add_argument("--n-synthetic", type=int, default=100)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--eta", type=float, default=None, help="DDIM η (default: the model's)")
    p.add_argument("-n", type=int, default=50, help="hypotheses on real images")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--skip-synthetic", action="store_true")
    p.add_argument("--write", action="store_true", help="update docs/results.md")
    p.add_argument("--json", type=pathlib.Path, help="also dump all numbers here")
    p.add_argument("--models-dir", type=pathlib.Path, default=None,
                   help="evaluate the weights + manifest in this folder (a candidate) instead of resources/models")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from core.stage1 import JointLifter

    lifter = JointLifter.from_weights("cpu", models_dir=args.models_dir)
    eta = lifter.eta if args.eta is None else args.eta
    cmd = "python -m training.evaluate " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    syn = None
    if not args.skip_synthetic:
        syn = eval_synthetic(lifter, args.n_synthetic, args.steps, eta)
        print(json.dumps({k: v for k, v in syn.items()}, indent=1))
    real = []
    ann_root = args.real_data / "annotated" / "hgc_realworld"
    if (ann_root / "annotations.json").exists():
        for side in ("detected", "annotated"):
            r = eval_real(lifter, ann_root, args.n, args.steps, eta, side)
            print(json.dumps({k: v for k, v in r.items() if k != "rows"}, indent=1))
            real.append(r)
    else:
        print(f"real data not found at {ann_root}; skipping the real-image comparison")
    text = markdown(syn, real, cmd, lifter_manifest(args.models_dir))
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"synthetic": syn, "real": real}, indent=1))
    if args.write:
        write_section(text, "stage1")
        print(f"updated {RESULTS}")
    return 0


def lifter_manifest(models_dir: pathlib.Path | None = None) -> dict:
    from core.weights import read_manifest
    return (read_manifest(models_dir) if models_dir else read_manifest()).get("joint_diffusion", {})


if __name__ == "__main__":
    raise SystemExit(main())
