"""Mesh quality (issue 25): roughness and accuracy of the mesh variants of the same cascade samples.

    python -m training.eval_mesh_quality --base-ae <old mesh_ae> --candidate-ae runs/mesh_ae_smooth/ckpt.pt \
        --cache runs/stage2/cache_test_512_m50.pt --n-images 32 --real-data /work/shared/realdata \
        --threads 1 --json runs/mesh_quality.json --panel docs/img/mesh_quality_overlays.png

Variants, all from the SAME latents of one cascade run (the LDM's samples do not depend on the decoder):
`base` (decoder of --base-ae), `candidate` (decoder of --candidate-ae), `param` (Anny meshes of the
parameter head, core.mesh.params, on the latents), `param_reenc` (the head on the candidate's decoded
meshes passed through the frozen encoder again). --base-ae / --candidate-ae: a training checkpoint
(ckpt.pt), a .safetensors file of the shipped architecture, or a models folder holding mesh_ae.

Roughness = core.mesh.roughness (median dihedral angle per mesh, averaged over meshes), of the
aggregate meshes and of the hypothesis clouds; reference: clean Anny meshes in sampled poses.
Synthetic: the cached held-out test renders (stage-1 hypotheses cached by train_mesh_ldm; aggregate
= paper mode) — PA-MPJPE / PA-MPVPE of the aggregate and best-of-N PA-MPVPE against the true mesh.
Real: the annotated crops (mesh-joint PA-MPJPE, aggregate and best-of-N) and the photos (roughness
only), through the full pipeline (MediaPipe → stage 1 → stage 2); an overlay panel of the three
variants on the photos. Timing: parameters of 50 hypotheses (head only) and their Anny meshes.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np
import torch

VARIANTS = ("base", "candidate", "param", "param_reenc")


def load_ae(path: str | None):
    """A MeshAE from a checkpoint, a .safetensors file or a models folder (None: the shipped one)."""
    from core.mesh.sampling import load_sampling
    from core.nets.mesh_ae import MeshAE, MeshAEConfig, load_mesh_ae
    from core.weights import read_manifest

    if path is None:
        return load_mesh_ae()
    p = pathlib.Path(path)
    if p.is_dir():
        return load_mesh_ae(models_dir=p)
    cfg = MeshAEConfig(**read_manifest()["mesh_ae"]["config"]["net"])
    ae = MeshAE(load_sampling(), cfg)
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = {k: v.float() for k, v in load_file(str(p)).items()}
    else:
        state = torch.load(p, map_location="cpu", weights_only=True)["model"]
    ae.load_state_dict(state)
    return ae.eval()


def load_head(path: str | None):
    """The parameter head from a train_mesh_params checkpoint or a models folder (None: the shipped one)."""
    from core.mesh.params import ParamHead, ParamHeadConfig, load_param_head

    if path is None or pathlib.Path(path).is_dir():
        return load_param_head(models_dir=path)
    ck = torch.load(path, map_location="cpu", weights_only=True)
    hidden = ck["model"]["body.0.weight"].shape[0]
    depth = sum(1 for k in ck["model"] if k.startswith("body.") and k.endswith(".weight"))
    head = ParamHead(ParamHeadConfig(hidden=hidden, depth=depth))
    head.load_state_dict(ck["model"])
    return head.eval()


class Variants:
    """Decode raw latents (B,168) into each variant's (vertices, joints), metres, root-relative."""

    def __init__(self, base, candidate, head, hand) -> None:
        self.base, self.candidate, self.head, self.hand = base, candidate, head, hand

    @torch.no_grad()
    def decode(self, z: np.ndarray | torch.Tensor) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        from core.mesh.params import hypothesis_params, parametric_meshes

        z = torch.as_tensor(np.asarray(z), dtype=torch.float32)
        out = {}
        for name, ae in (("base", self.base), ("candidate", self.candidate)):
            v, j = ae.decode_metres(z)
            out[name] = (v.numpy().astype(np.float64), j.numpy().astype(np.float64))
        v, j = parametric_meshes(self.hand, hypothesis_params(self.head, self.base.normalise_latent(z)))
        out["param"] = (v.astype(np.float64), j.astype(np.float64))
        # the candidate's decoded meshes re-encoded (back onto the encoder's manifold, where the head was trained)
        zr = self.base.encode_metres(torch.as_tensor(out["candidate"][0], dtype=torch.float32))
        v, j = parametric_meshes(self.hand, hypothesis_params(self.head, self.base.normalise_latent(zr)))
        out["param_reenc"] = (v.astype(np.float64), j.astype(np.float64))
        return out


def clean_reference(hand, n: int = 256, seed: int = 0) -> float:
    from core.mesh.roughness import roughness
    from training.data.meshes import MeshSource

    v, _ = MeshSource(hand).sample(n, np.random.default_rng(seed))
    return roughness(v, hand.faces)


@torch.no_grad()
def eval_synthetic(ms, var: Variants, cache: dict, n_images: int, n_hyp: int, faces: np.ndarray) -> dict:
    from core.mesh.roughness import roughness_per_mesh
    from core.metrics import pa_mpjpe
    from core.nets.joint_diffusion import JOINT_SCALE
    from core.nets.mesh_ae import MESH_SCALE

    rows = {k: {m: [] for m in ("pa_mpjpe", "pa_mpvpe", "best_pa_mpvpe", "rough_agg", "rough_cloud")} for k in VARIANTS}
    gt_rough = []
    for i in range(min(n_images, len(cache["latents"]))):
        hyps = cache["hyps"][i, :n_hyp].float()
        n = len(hyps)
        c = torch.cat([hyps, hyps.mean(0, keepdim=True).expand(n, -1, -1)])
        ctx = ms.ldm.prepare_context([t[i:i + 1].float() for t in cache["tokens"]])
        res = ms.diffusion.ddim_sample(ms.ldm, (2 * n, 168), steps=10, seed=i, record=False,
                                       joints=c / JOINT_SCALE, context=ctx)
        z = ms.ae.denormalise_latent(res.x0)
        z = torch.cat([z[:n], z[n:].mean(0, keepdim=True)])
        gv = cache["verts"][i].float().numpy().astype(np.float64) * MESH_SCALE
        gv = gv - (ms.ae.joint_regressor.numpy() @ gv)[0]
        gj = cache["joints_rr"][i].numpy().astype(np.float64)
        gt_rough.append(roughness_per_mesh(gv[None], faces)[0])
        for name, (v, j) in var.decode(z).items():
            r = rows[name]
            r["pa_mpjpe"].append(pa_mpjpe(j[n], gj) * 1000)
            r["pa_mpvpe"].append(pa_mpjpe(v[n], gv) * 1000)
            r["best_pa_mpvpe"].append((pa_mpjpe(v[:n], gv[None]) * 1000).min())
            rr = roughness_per_mesh(v, faces)
            r["rough_agg"].append(rr[n])
            r["rough_cloud"].append(rr[:n].mean())
    out = {k: {m: float(np.mean(x)) for m, x in r.items()} for k, r in rows.items()}
    out["gt_mesh_roughness"] = float(np.mean(gt_rough))
    out["n_images"] = len(gt_rough)
    out["n_hyp"] = n_hyp
    return out


def _capture_stage(ms):
    """The pipeline's MeshStage, also keeping the raw latents of every `sample` call (evaluation only)."""
    from core.cascade import MeshStage

    class Capturing(MeshStage):
        captured: list = []

        def sample(self, *a, **kw):
            out = super().sample(*a, **kw)
            self.captured.append(np.concatenate([out.latents, out.latent_mean[None]]))
            return out

    return Capturing(ms.encoder, ms.ldm, ms.ae, ms.diffusion, ms.device, ms.config)


def _crop_tile(img: np.ndarray, box, size: int = 256) -> np.ndarray:
    import cv2

    x0, y0, x1, y1 = [float(b) for b in box]
    cx, cy, s = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * 0.75
    h, w = img.shape[:2]
    a, b = int(max(0, cx - s)), int(max(0, cy - s))
    c, d = int(min(w, cx + s)), int(min(h, cy + s))
    t = img[b:d, a:c]
    k = size / max(t.shape[:2])
    return cv2.resize(t, (max(1, int(t.shape[1] * k)), max(1, int(t.shape[0] * k))), interpolation=cv2.INTER_AREA)


def eval_real(est, ms, var: Variants, root: pathlib.Path, n: int, faces: np.ndarray, max_tiles: int = 8):
    from core.io.images import load_image
    from core.joints import mirror_faces, mirror_x
    from core.mesh.roughness import roughness_per_mesh
    from core.metrics import pa_mpjpe
    from training.eval_stage2 import draw_mesh

    out = {}
    tiles = []

    def variants_of(r):
        z = ms.captured[-1]
        d = var.decode(z)
        if r.handedness == "left":
            d = {k: (mirror_x(v), mirror_x(j)) for k, (v, j) in d.items()}
        return d

    ann_root = root / "annotated" / "hgc_realworld"
    ann = json.loads((ann_root / "annotations.json").read_text())
    rows = {k: {"agg": [], "best": [], "rough_agg": [], "rough_cloud": []} for k in VARIANTS}
    for s in ann["samples"]:
        img = load_image(ann_root / s["image"])
        gt = np.array(s["hands"][0]["xyz_cam_mm"], np.float64)
        try:
            (r,) = est.run(img, n=n, steps=10, K=np.array(s["K"], np.float64))
        except Exception as exc:   # no hand found etc.
            print(f"{s['image']}: {exc}", flush=True)
            continue
        for name, (v, j) in variants_of(r).items():
            rows[name]["agg"].append(pa_mpjpe(j[n] * 1000, gt))
            rows[name]["best"].append(pa_mpjpe(j[:n] * 1000, gt[None]).min())
            rr = roughness_per_mesh(v, faces)
            rows[name]["rough_agg"].append(rr[n])
            rows[name]["rough_cloud"].append(rr[:n].mean())
    out["annotated"] = {k: {m: float(np.mean(x)) for m, x in r.items()} for k, r in rows.items()}
    out["annotated"]["n_ok"] = len(rows["base"]["agg"])
    rows = {k: {"rough_agg": [], "rough_cloud": []} for k in VARIANTS}
    n_hands = 0
    for p in sorted((root / "photos").iterdir()):
        try:
            img = load_image(p)
            res = est.run(img, n=n, steps=10, hand="all")
        except Exception as exc:
            print(f"{p.name}: {exc}", flush=True)
            continue
        for h, r in enumerate(res):
            n_hands += 1
            # the captured latents are in call order, one `sample` call per hand
            d = var.decode(ms.captured[len(ms.captured) - len(res) + h])
            if r.handedness == "left":
                d = {k: (mirror_x(v), mirror_x(j)) for k, (v, j) in d.items()}
            for name, (v, _) in d.items():
                rr = roughness_per_mesh(v, faces)
                rows[name]["rough_agg"].append(rr[n])
                rows[name]["rough_cloud"].append(rr[:n].mean())
            if len(tiles) < max_tiles and h == 0:
                f = mirror_faces(faces) if r.handedness == "left" else faces
                tiles.append([_crop_tile(draw_mesh(img, d[k][0][n] + r.mesh_cam_t, f, r.K), r.box) for k in VARIANTS])
    out["photos"] = {k: {m: float(np.mean(x)) for m, x in r.items()} for k, r in rows.items()}
    out["photos"]["n_hands"] = n_hands
    return out, tiles


def timing(var: Variants, hand, reps: int = 20) -> dict:
    from core.mesh.params import hypothesis_params, parametric_meshes

    z = var.base.normalise_latent(torch.randn(50, 168) * var.base.latent_std + var.base.latent_mean)
    hypothesis_params(var.head, z)
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        p = hypothesis_params(var.head, z)
        t.append(time.perf_counter() - t0)
    tm = []
    for _ in range(5):
        t0 = time.perf_counter()
        parametric_meshes(hand, p)
        tm.append(time.perf_counter() - t0)
    return {"params_50_ms": 1000 * float(np.median(t)), "param_meshes_50_ms": 1000 * float(np.median(tm)),
            "threads": torch.get_num_threads()}


def panel(tiles: list, size: int = 256) -> np.ndarray:
    rows = []
    for row in tiles:
        ims = []
        for t in row:
            c = np.zeros((size, size, 3), np.uint8)
            c[:t.shape[0], :t.shape[1]] = t
            ims.append(c)
        rows.append(np.concatenate(ims, 1))
    return np.concatenate(rows, 0)


LABELS = {"base": "decoder, base (--base-ae)", "candidate": "decoder, candidate (--candidate-ae)",
          "param": "Anny mesh of the head's parameters (on the LDM latent)",
          "param_reenc": "Anny mesh of the head's parameters (on the candidate's mesh re-encoded)"}


def markdown(res: dict, base: str, cand: str) -> str:
    """The generated block of the "Mesh quality" section of docs/results.md."""
    ref = res["clean_anny_roughness"]
    L = ["<!-- mesh_quality:begin -->", "## Mesh quality (issue 25: smooth meshes, Anny parameters)", "",
         f"Command: `{res['command']}`  ",
         f"base = `{base}`, candidate = `{cand}`; all variants decode the SAME latents of each cascade run.", "",
         f"Roughness reference: clean Anny meshes in sampled poses **{ref:.2f}°** (target ≤ 1.1 × = {1.1 * ref:.2f}°).", ""]
    syn = res.get("synthetic")
    if syn:
        L += [f"Synthetic held-out renders ({syn['n_images']} images of the test split, seed 2026, {syn['n_hyp']} hyps, "
              f"10 + 10 DDIM steps; true meshes {syn['gt_mesh_roughness']:.2f}°):", "",
              "| mesh | aggregate PA-MPJPE | aggregate PA-MPVPE | best-of-N PA-MPVPE | roughness aggregate | roughness hypotheses |",
              "|---|---|---|---|---|---|"]
        for k in VARIANTS:
            r = syn[k]
            L.append(f"| {LABELS[k]} | {r['pa_mpjpe']:.2f} | {r['pa_mpvpe']:.2f} | {r['best_pa_mpvpe']:.2f} | "
                     f"{r['rough_agg']:.1f}° | {r['rough_cloud']:.1f}° |")
        L.append("")
    real = res.get("real")
    if real:
        a, ph = real["annotated"], real["photos"]
        L += [f"Real: annotated crops (hgc_realworld, {a['n_ok']} detected; MediaPipe → cascade, K given) and the "
              f"shared photos ({ph['n_hands']} hands, every hand of each photo):", "",
              "| mesh | mesh-joint PA-MPJPE aggregate | best-of-N | roughness aggregate / hypotheses (annotated) | "
              "roughness aggregate / hypotheses (photos) |", "|---|---|---|---|---|"]
        for k in VARIANTS:
            L.append(f"| {LABELS[k]} | {a[k]['agg']:.2f} | {a[k]['best']:.2f} | {a[k]['rough_agg']:.1f}° / "
                     f"{a[k]['rough_cloud']:.1f}° | {ph[k]['rough_agg']:.1f}° / {ph[k]['rough_cloud']:.1f}° |")
        L.append("")
    t = res["timing"]
    L += [f"Timing ({t['threads']} thread, shared CPU): parameters of 50 hypotheses {t['params_50_ms']:.1f} ms "
          f"(head only); their Anny meshes {t['param_meshes_50_ms']:.0f} ms. Benchmark keys: `params.n50_ms`, "
          "`params.meshes_n50_ms` (tests/benchmarks/bench_cascade.py).", "<!-- mesh_quality:end -->"]
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-ae", default=None, help="decoder 'base' (default: the shipped mesh_ae)")
    ap.add_argument("--candidate-ae", default=None, help="decoder 'candidate' (default: the shipped mesh_ae)")
    ap.add_argument("--param-head", default=None, help="train_mesh_params ckpt.pt or models folder (default: shipped)")
    ap.add_argument("--cache", type=pathlib.Path, default=None, help="test cache of train_mesh_ldm")
    ap.add_argument("--n-images", type=int, default=32)
    ap.add_argument("--n-hyp", type=int, default=50)
    ap.add_argument("--real-data", type=pathlib.Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=pathlib.Path, default=None)
    ap.add_argument("--write", action="store_true", help="replace the generated block of the Mesh quality section")
    ap.add_argument("--panel", type=pathlib.Path, default=None, help="overlay panel (columns: " + ", ".join(VARIANTS) + ")")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from core.cascade import MeshStage
    from core.hand.anny_hand import AnnyHand

    hand = AnnyHand()
    faces = hand.faces
    ms = MeshStage.from_weights("cpu")
    base, cand = load_ae(args.base_ae), load_ae(args.candidate_ae)
    if not (torch.equal(base.latent_mean, cand.latent_mean) and torch.equal(base.latent_std, cand.latent_std)):
        print("warning: the two decoders' latent statistics differ (encoder not frozen?)", flush=True)
    ms.ae = base.eval()   # the LDM's latents are read in the base AE's statistics
    var = Variants(base, cand, load_head(args.param_head), hand)
    res = {"clean_anny_roughness": clean_reference(hand), "timing": timing(var, hand)}
    print(json.dumps(res), flush=True)
    if args.cache is not None:
        cache = torch.load(args.cache, map_location="cpu", weights_only=True)
        res["synthetic"] = eval_synthetic(ms, var, cache, args.n_images, args.n_hyp, faces)
        print(json.dumps(res["synthetic"]), flush=True)
    if args.real_data is not None:
        from core.cascade import CascadeEstimator

        cap = _capture_stage(ms)
        est = CascadeEstimator(mesh_stage=cap)
        res["real"], tiles = eval_real(est, cap, var, args.real_data, args.n_hyp, faces)
        print(json.dumps(res["real"]), flush=True)
        if args.panel and tiles:
            import cv2

            args.panel.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(args.panel), panel(tiles)[..., ::-1])
            print(f"wrote {args.panel}", flush=True)
    res["command"] = "python -m training.eval_mesh_quality " + " ".join(argv if argv is not None else sys.argv[1:])
    res["command"] += "" if args.write else " --write"
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))
    if args.write:
        from training.results_doc import RESULTS, write_section

        write_section(markdown(res, args.base_ae or "shipped mesh_ae", args.candidate_ae or "shipped mesh_ae"),
                      "mesh_quality")
        print(f"updated {RESULTS}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
