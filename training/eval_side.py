"""Left or right (issue 28): the side decision (core/side.py) against MediaPipe's label alone.

    python -m training.eval_side collect --real-data ../shared/realdata --aug 12 --views --out runs/side/real.json
    python -m training.eval_side collect --renders DIR --views --out runs/side/syn.json   # make_dataset shards
    python -m training.eval_side report runs/side/real.json [runs/side/syn.json ...] [--half 0|1] [--brief]
    python -m training.eval_side tune runs/side/real.json
    python -m training.eval_side views-report runs/side/real.json
    python -m training.eval_side rules runs/side/real.json [more.json ...]   # variants of the rule compared
    python -m training.eval_side pampjpe --real-data ../shared/realdata [--stage 2] [--aug 12 --differing-only]
    python -m training.eval_side time
    python -m training.eval_side lift --real-data ../shared/realdata --aug 12 --out runs/side/lift.json
    python -m training.eval_side lift-report runs/side/lift.json

`collect` runs the detector on every image and on its horizontal mirror (the true side flips, the
image stays real), each also under `--aug` random photometric/geometric variants (rotation, scale,
shift, brightness, blur, JPEG; the same variant for the image and its mirror), and stores per hand the
evidence `core.side.SideEvidence` reads (label, confidence, chiralities, the mirror check) with the
true side; with `--views` also the landmark model's readings of every view of `collect_views` (a
superset of core.side.VIEWS), so view sets and weights can be compared afterwards. Real images: hgc_realworld (LEFT hands), freihand_eval_K_only (right hands) and the photos
whose hands have a side listed in PHOTO_SIDES (looked at by eye; unlisted hands are skipped).
Renders: make_dataset shards are right hands; their mirrors are left hands.

`report` prints the confusion matrices (true × chosen) of the label alone and of `decide_side`, the
error counts, and how often the decision turns a confident correct label wrong, per source, for the
originals and the mirrored images. `tune` chooses the view vote's constants on one half of the images
(`image_half`) and reports on the other; `views-report` shows each view alone; `time` times the decision.
`pampjpe` measures what the side choice does to PA-MPJPE on the annotated real crops and their mirror.
`lift` is `collect` (same images and variants for the same seed) with each hand whose label is unsure
lifted by stage 1 as a left and as a right hand: the hypotheses' spread and reprojection error, and the
aggregate's DPoser plausibility and IK residual per side; `lift-report` says how often each picks the true
side and what it would do as one more vote in `decide_side` (a negative result: docs/results.md).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

# Photos of ../shared/realdata/photos with hands whose side is clear by eye: (wrist x, y px) → side.
# A detection counts as that hand when its wrist (mapped back through the augmentation) is within
# 12 % of the image's longer side.
PHOTO_SIDES: dict[str, list[tuple[float, float, str]]] = {
    "hagrid_samples-crop-r0c4.jpg": [(197, 200, "left")],
    "hagrid_samples-crop-r1c3.jpg": [(127, 228, "right"), (207, 220, "left")],
    "hagrid_samples-crop-r3c0.jpg": [(72, 180, "right")],
    "hamer_test3.jpg": [(356, 382, "right"), (534, 399, "left")],
    "hamer_test5.jpg": [(418, 755, "right"), (602, 749, "left")],
    "hgc_00144.jpg": [(98, 231, "left")],
    "mmpose-onehand10k_1402.jpg": [(97, 261, "right")],
    "mmpose-freihand_00017620.jpg": [(78, 110, "right")],
    "meshgraphormer_freihand_sample1.jpg": [(57, 130, "right")],
    "meshgraphormer_freihand_sample3.jpg": [(75, 156, "right")],
    "meshgraphormer_internet_fig4.jpg": [(113, 154, "right")],
}


# --- augmentation -------------------------------------------------------------------------------------

def random_variant(rng: np.random.Generator, size: tuple[int, int]) -> dict:
    """A random variant: 2×3 affine A (rotation ±45°, scale 0.75-1.25, shift ±10 %) + photometric."""
    w, h = size
    ang = rng.uniform(-45, 45)
    sc = rng.uniform(0.75, 1.25)
    import cv2

    A = cv2.getRotationMatrix2D((w / 2, h / 2), ang, sc)
    A[:, 2] += rng.uniform(-0.1, 0.1, 2) * np.array([w, h])
    return {"A": A, "gain": rng.uniform(0.6, 1.4), "bias": rng.uniform(-25, 25),
            "blur": int(rng.choice([0, 0, 3, 5])), "jpeg": int(rng.choice([0, 40, 70]))}


def apply_variant(img: np.ndarray, v: dict | None) -> np.ndarray:
    import cv2

    if v is None:
        return img
    h, w = img.shape[:2]
    out = cv2.warpAffine(img, v["A"], (w, h), borderMode=cv2.BORDER_REFLECT101)
    out = np.clip(out.astype(np.float32) * v["gain"] + v["bias"], 0, 255).astype(np.uint8)
    if v["blur"]:
        out = cv2.GaussianBlur(out, (v["blur"], v["blur"]), 0)
    if v["jpeg"]:
        ok, buf = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, v["jpeg"]])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].copy()
    return np.ascontiguousarray(out)


def unmap_points(uv: np.ndarray, v: dict | None, width: int, mirrored: bool) -> np.ndarray:
    """Pixel points of a (mirrored) variant back into the original image."""
    p = np.array(uv, np.float64)
    if mirrored:
        p[..., 0] = width - p[..., 0]
    if v is not None:
        A = np.vstack([v["A"], [0, 0, 1]])
        p = (np.c_[p, np.ones(len(p))] @ np.linalg.inv(A).T)[:, :2]
    return p


# --- collection -----------------------------------------------------------------------------------------

def _match(dets, pts_back, targets, tol):
    """{target: detection index}, nearest wrist within `tol` px in the original image; detections come
    largest first and the first match of a target is kept."""
    out: dict[int, int] = {}
    for i, p in enumerate(pts_back):
        d = [np.hypot(*(p - np.array(t[:2]))) for t in targets]
        j = int(np.argmin(d))
        if d[j] < tol and j not in out:
            out[j] = i
    return out


def evidence_row(det, mirror_det) -> dict:
    from core.side import SideEvidence

    ev = SideEvidence.from_detection(det, mirror_det)
    return {"label": ev.label, "conf": ev.label_confidence, "cw": ev.world_chirality,
            "ci": ev.image_chirality, "mirror_p_right": ev.mirror_p_right}


def collect_image(detector, img: np.ndarray, targets: list, n_aug: int, rng, name: str, group: str,
                  tol: float | None = None, extra=None) -> list[dict]:
    """Rows for one image: every variant × {as is, mirrored}; `targets` = [(x, y, side)] in the original,
    a detection is a target's hand when its wrist maps back within `tol` px (default 12 % of the size).
    `extra(image, detection, row)`, when given, adds fields to each row (`lift`)."""
    from core.errors import NoHandError
    from core.side import other

    h, w = img.shape[:2]
    tol = 0.12 * max(h, w) if tol is None else tol
    variants = [None] + [random_variant(rng, (w, h)) for _ in range(n_aug)]
    rows = []
    for k, v in enumerate(variants):
        base = apply_variant(img, v)
        found = []
        for mirrored in (False, True):
            im = base[:, ::-1].copy() if mirrored else base
            try:
                dets = detector.detect(im)
            except NoHandError:
                dets = []
            wr = np.array([unmap_points(d.keypoints2d[:1], v, w, mirrored)[0] for d in dets]).reshape(-1, 2)
            found.append({j: dets[i] for j, i in _match(dets, wr, targets, tol).items()})
        for mirrored in (False, True):
            for j, det in found[mirrored].items():
                true = targets[j][2] if not mirrored else other(targets[j][2])
                rows.append({"image": name, "group": group, "variant": k, "mirrored": mirrored, "hand": j,
                             "true": true, **evidence_row(det, found[not mirrored].get(j))})
                if extra is not None:
                    rows[-1].update(extra(base[:, ::-1].copy() if mirrored else base, det, rows[-1]))
    return rows


def collect_real(detector, root: pathlib.Path, n_aug: int, seed: int, extra=None) -> list[dict]:
    from core.io.images import load_image

    rng = np.random.default_rng(seed)
    jobs = []
    ann_root = root / "annotated" / "hgc_realworld"
    for s in json.loads((ann_root / "annotations.json").read_text())["samples"]:
        hand = s["hands"][0]
        jobs.append((ann_root / s["image"], [(*hand["uv_px"][0], hand["side"])], "hgc"))
    for p in sorted((root / "annotated" / "freihand_eval_K_only").glob("*.jpg")):
        jobs.append((p, None, "freihand"))   # right hands; any detection counts
    for name, hands in PHOTO_SIDES.items():
        if (root / "photos" / name).exists():
            jobs.append((root / "photos" / name, hands, "photos"))
    rows = []
    for path, targets, group in jobs:
        img = load_image(path)
        if targets is None:   # one hand, position unknown: the largest detection is it
            h, w = img.shape[:2]
            rows += collect_image(detector, img, [(w / 2, h / 2, "right")], n_aug, rng, path.name, group,
                                  tol=float("inf"), extra=extra)
        else:
            rows += collect_image(detector, img, targets, n_aug, rng, path.name, group, extra=extra)
        print(f"{path.name}: {len(rows)} rows", file=sys.stderr, flush=True)
    return rows


def collect_renders(detector, folder: pathlib.Path, n_aug: int, seed: int, limit: int, extra=None) -> list[dict]:
    """make_dataset shards: right hands (their kp2d says where)."""
    rng = np.random.default_rng(seed)
    rows = []
    n = 0
    for shard in sorted(folder.glob("shard_*.npz")):
        z = np.load(shard)
        for i in range(len(z["images"])):
            if n >= limit:
                return rows
            wrist = z["kp2d"][i][0]
            rows += collect_image(detector, z["images"][i], [(wrist[0], wrist[1], "right")], n_aug, rng,
                                  f"{shard.stem}:{i}", "renders", extra=extra)
            n += 1
    return rows


# --- the landmark model on several views of each hand (core.side.read_views) ------------------------------

def collect_views() -> list:
    """The views `collect --views` records per hand (a superset of core.side.VIEWS, so rules can be chosen
    afterwards): upright; turned ±15°, ±30°, 90°, 180°, 270°; zoomed 0.8 / 1.25; moved ±10 % along each
    crop axis — each as is and mirrored."""
    from core.side import View

    geo = [View()] + [View(turn=t) for t in (15, -15, 30, -30, 90, 180, 270)]
    geo += [View(zoom=z) for z in (0.8, 1.25)]
    geo += [View(shift=s) for s in ((0.1, 0), (-0.1, 0), (0, 0.1), (0, -0.1))]
    return geo + [View(v.turn, v.zoom, v.shift, True) for v in geo]


def view_extra(searcher, views):
    """A `collect_image` `extra` hook: the landmark model's readings of `views` of each hand (turned back
    for mirrored views), its time, and where the hand is (wrist, size in px)."""
    from core.side import read_views

    def extra(img, det, row):
        t0 = time.perf_counter()
        r = read_views(searcher, img, det.keypoints2d, views)
        kp = np.asarray(det.keypoints2d)
        return {"views": {"p": np.round(r.p_right, 4).tolist(), "pres": np.round(r.presence, 4).tolist(),
                          "ch": np.round(r.chirality, 4).tolist()},
                "t_views_s": time.perf_counter() - t0, "wrist": kp[0].round(1).tolist(),
                "size": float(np.ptp(kp, 0).max())}
    return extra


# --- lifted evidence: each hand lifted as a left and as a right hand -------------------------------------

PLAUSIBILITY_T = (0.1, 0.2, 0.3, 0.5)   # DPoser noise levels of the plausibility score
PLAUSIBILITY_DRAWS = 16                 # noise draws per level (fixed seed: the same for both sides)


def prior_plausibility(prior, hand, right_joints: np.ndarray, iters: int = 150) -> tuple[float, float, np.ndarray]:
    """How plausible a right hand's joints (21,3) m are as a pose: plain inverse kinematics (`fit_joints`
    with no prior term, neutral shape, scale fitted), then DPoser's denoising error of the fitted pose,
    mean over PLAUSIBILITY_T × PLAUSIBILITY_DRAWS of ‖z − ẑ0(α z + σ ε, t)‖² / 45 (normalised pose space;
    lower = more typical). Returns (denoising error, IK residual mm, pose (45,))."""
    import torch

    from core.prior import TTOConfig, fit_joints

    res = fit_joints(prior, hand, right_joints, n=1, cfg=TTOConfig(prior="none", iters=iters, record=False),
                     fit_shape=False)
    ik_mm = float(np.linalg.norm(res.joints[0] - right_joints, axis=-1).mean() * 1000)
    z = prior.normalize(torch.as_tensor(res.pose, dtype=torch.float32))            # (1,45)
    gen = torch.Generator().manual_seed(0)
    errs = []
    with torch.no_grad():
        for t in PLAUSIBILITY_T:
            a, sg = prior.sde.alpha_sigma(t)
            zz = z.expand(PLAUSIBILITY_DRAWS, -1)
            z0 = prior.denoise(a * zz + sg * torch.randn(zz.shape, generator=gen), t)
            errs.append(float(((z0 - zz) ** 2).mean()))
    return float(np.mean(errs)), ik_mm, res.pose[0]


def lift_features(pipe, prior, hand, img: np.ndarray, det, n: int = 20, steps: int = 10) -> dict:
    """Stage 1 of one detection lifted as each side (forced; image-size K): per side the hypotheses' spread
    (mean distance to their mean, mm), their median reprojection error (px), and the aggregate's DPoser
    plausibility and IK residual (`prior_plausibility`); plus the mean joint-angle distance (rad) between
    the two sides' fitted poses (how different the two explanations are as poses)."""
    import copy

    from core.hypotheses import reprojection_errors
    from core.joints import mirror_x

    out, poses = {}, {}
    for side in ("left", "right"):
        (r,) = pipe.estimate(img, [copy.deepcopy(det)], n=n, steps=steps, seed=0, side=side)
        hyp = np.asarray(r.joint_hypotheses, np.float64)
        spread = float(np.linalg.norm(hyp - hyp.mean(0), axis=-1).mean() * 1000)
        reproj = float(np.median(reprojection_errors(hyp, r.cam_t, r.keypoints2d, r.K)))
        right = r.joints if side == "right" else mirror_x(r.joints)      # the lifted hand, as a right hand
        plaus, ik_mm, poses[side] = prior_plausibility(prior, hand, np.asarray(right, np.float32))
        out.update({f"spread_{side}": spread, f"reproj_{side}": reproj, f"prior_{side}": plaus,
                    f"ik_{side}": ik_mm})
    out["pose_gap"] = float(np.abs(poses["left"] - poses["right"]).mean())
    return out


def collect_lift(root: pathlib.Path | None, renders: pathlib.Path | None, n_aug: int, seed: int, limit: int,
                 unsure_only: bool, n: int, steps: int) -> list[dict]:
    """`collect` (same images, same variants for the same seed) with `lift_features` for each hand — only
    for hands whose label is below CONFIDENT_LABEL when `unsure_only` (a confident label is kept anyway)."""
    import torch

    from core.hand import load_hand_model
    from core.pipeline import ImagePipeline
    from core.prior import load_prior
    from core.side import CONFIDENT_LABEL

    torch.set_num_threads(1)
    pipe = ImagePipeline.load("cpu", mesh=False)
    prior, hand = load_prior(), load_hand_model("anny")

    def extra(img, det, row):
        if unsure_only and row["conf"] >= CONFIDENT_LABEL:
            return {}
        t0 = time.perf_counter()
        f = lift_features(pipe, prior, hand, img, det, n, steps)
        f["t_lift_s"] = time.perf_counter() - t0
        return f

    rows = []
    if root is not None:
        rows += collect_real(pipe.stage1.detector, root, n_aug, seed, extra)
    if renders is not None:
        rows += collect_renders(pipe.stage1.detector, renders, n_aug, seed, limit, extra)
    pipe.stage1.detector.close()
    return rows


LIFT_FEATURES = ("spread", "reproj", "prior", "ik")


VOTE_WEIGHTS = (0.25, 0.5, 1.0, float("inf"))   # log-odds weights of a lifted feature's vote in `lift_report`


def lift_report(rows: list[dict]) -> list[str]:
    """For each lifted feature (lower = that side preferred): how often it picks the true side on the lifted
    hands (all / where the label is wrong / where the decision is wrong), and the decision errors when its
    vote (±w in log-odds, by the sign of the difference) is added to the decision's sum for unsure labels
    (w = ∞: the feature alone decides them), with the decisions it fixes / breaks."""
    import core.side as side_mod

    lifted = [r for r in rows if "spread_left" in r]
    dec0 = decisions(rows)
    wrong0 = sum(d.side != r["true"] for d, r in zip(dec0, rows))
    out = [f"{len(rows)} hands, {len(lifted)} lifted; label wrong {sum(r['label'] != r['true'] for r in rows)}, "
           f"decision wrong {wrong0}",
           "| feature | picks true side (lifted) | where label wrong | where decision wrong | "
           + " | ".join(f"decision wrong (fixed / broken), w = {w:g}" for w in VOTE_WEIGHTS) + " |",
           "|---|---|---|---|" + "---|" * len(VOTE_WEIGHTS)]
    for f in LIFT_FEATURES:
        def pick(r):
            a, b = r[f"{f}_left"], r[f"{f}_right"]
            return None if a == b else ("left" if a < b else "right")
        good = [pick(r) == r["true"] for r in lifted]
        lw = [pick(r) == r["true"] for r in lifted if r["label"] != r["true"]]
        dw = [pick(r) == r["true"] for r, d in zip(rows, dec0) if "spread_left" in r and d.side != r["true"]]
        cells = []
        for w in VOTE_WEIGHTS:
            fixed = broken = 0
            for r, d in zip(rows, dec0):
                if "spread_left" not in r or r["conf"] >= side_mod.CONFIDENT_LABEL or pick(r) is None:
                    continue
                vote = 1 if pick(r) == "right" else -1
                sc = side_mod._logit(side_mod.p_right(d.side, d.confidence)) + (w * vote if w < float("inf") else vote)
                s = "right" if sc > 0 else "left"
                if w == float("inf"):
                    s = pick(r)
                fixed += s != d.side and s == r["true"]
                broken += s != d.side and d.side == r["true"]
            cells.append(f"{wrong0 - fixed + broken} ({fixed} / {broken})")
        out.append(f"| {f} | {sum(good)}/{len(good)} | {sum(lw)}/{len(lw)} | {sum(dw)}/{len(dw)} | "
                   + " | ".join(cells) + " |")
    gaps = [r["pose_gap"] for r in lifted]
    if gaps:
        out.append(f"pose gap (mean |Δ| of the 45 joint angles between the two sides' fitted poses, rad): median "
                   f"{np.median(gaps):.3f}, 90th pct {np.percentile(gaps, 90):.3f}; lift time median "
                   f"{np.median([r['t_lift_s'] for r in lifted]):.2f} s per hand (both sides)")
    return out


# --- report ---------------------------------------------------------------------------------------------

def view_indices(views) -> list[int]:
    """Positions of `views` in `collect_views()` (what `collect --views` recorded)."""
    recorded = collect_views()
    return [recorded.index(v) for v in views]


def decisions(rows: list[dict], use_mirror: bool = True, use_views: bool = True, views=None,
              min_chirality: float | None = None) -> list:
    """`decide_side` on recorded evidence; the view vote (when the rows have views and `use_views`) from
    `views` (default core.side.VIEWS) with `min_chirality` (default CHIRALITY_MIN)."""
    from core.side import CHIRALITY_MIN, VIEWS, SideEvidence, ViewReadings, decide_side, view_vote, views_log_odds

    idx = view_indices(VIEWS if views is None else views)
    cmin = CHIRALITY_MIN if min_chirality is None else min_chirality
    out = []
    for r in rows:
        vv = vp = None
        if use_views and "views" in r:
            rd = ViewReadings(*(np.asarray(r["views"][k], np.float64)[idx] for k in ("p", "pres", "ch")))
            vv, vp = view_vote(rd, cmin), views_log_odds(rd)
        ev = SideEvidence(r["label"], r["conf"], r["cw"], r["ci"], r["mirror_p_right"] if use_mirror else None,
                          vv, vp)
        out.append(decide_side(ev))
    return out


def confusion(true: list[str], chosen: list[str]) -> np.ndarray:
    """2×2 counts, rows = true (left, right), columns = chosen (left, right)."""
    m = np.zeros((2, 2), int)
    for t, c in zip(true, chosen):
        m[int(t == "right"), int(c == "right")] += 1
    return m


def summarise(rows: list[dict], confident: float | None = None) -> dict:
    from core.side import CONFIDENT_LABEL

    confident = CONFIDENT_LABEL if confident is None else confident
    true = [r["true"] for r in rows]
    label = [r["label"] for r in rows]
    out = {"n": len(rows), "label": confusion(true, label).tolist(),
           "label_wrong": int(sum(t != l for t, l in zip(true, label)))}
    for key, mirror, views in (("decision", True, True), ("decision_no_mirror", False, True),
                               ("decision_no_views", True, False)):
        dec = decisions(rows, mirror, views)
        ch = [d.side for d in dec]
        out[key] = confusion(true, ch).tolist()
        out[f"{key}_wrong"] = int(sum(t != c for t, c in zip(true, ch)))
        out[f"{key}_broke_confident"] = int(sum(t == r["label"] and r["conf"] >= confident and c != t
                                              for t, r, c in zip(true, rows, ch)))
        out[f"{key}_broke_any"] = int(sum(t == r["label"] and c != t for t, r, c in zip(true, rows, ch)))
        out[f"{key}_fixed"] = int(sum(t != r["label"] and c == t for t, r, c in zip(true, rows, ch)))
        by: dict[str, list[int]] = {}
        for t, d in zip(true, dec):
            by.setdefault(d.decided_by, [0, 0])[int(d.side == t)] += 1
        out[f"{key}_by"] = {k: {"wrong": v[0], "right": v[1]} for k, v in by.items()}
    return out


# --- PA-MPJPE on the annotated crops -------------------------------------------------------------------

def variants_with_K(img: np.ndarray, K: np.ndarray, aug: int, rng):
    """(index, image, K, variant) for the image itself (variant None) and `aug` random variants; K follows
    the similarity (focal × scale, principal point mapped; the in-plane rotation is left to the Procrustes
    alignment)."""
    h, w = img.shape[:2]
    yield 0, img, K, None
    for k in range(1, aug + 1):
        v = random_variant(rng, (w, h))
        sc = float(np.hypot(*v["A"][0, :2]))
        c = v["A"] @ np.array([K[0, 2], K[1, 2], 1.0])
        yield (k, apply_variant(img, v), np.array([[K[0, 0] * sc, 0, c[0]], [0, K[1, 1] * sc, c[1]], [0, 0, 1]]),
               v)


def eval_pampjpe(root: pathlib.Path, stage: int, n: int = 50, steps: int = 10, aug: int = 0, seed: int = 0,
                 differing_only: bool = False) -> dict:
    """hgc_realworld crops and their mirrors (K and the 3D joints mirrored with them): PA-MPJPE (mm) of the
    result lifted with the label's side, the decided side and the true side (each hand lifted both ways).
    `aug` random variants per crop as well (`random_variant`; K follows the similarity: focal × scale,
    principal point mapped; PA-MPJPE ignores the in-plane rotation); the hand is the detection whose wrist
    maps back within 12 % of the image size of the annotated one (the variants' reflected borders can hold a
    mirrored copy of the hand). `differing_only`: lift only hands
    where the label, the decision and the true side are not all the same (elsewhere the three results
    are one and the same). The side decision's time per hand is measured with a 1-thread landmark model."""
    import torch

    from core.detector import mirror_K
    from core.errors import NoHandError
    from core.hand_search import HandSearcher
    from core.io.images import load_image
    from core.metrics import pa_mpjpe
    from core.pipeline import ImagePipeline
    from core.side import SideEvidence, decide_sides, other

    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    pipe = ImagePipeline.load("cpu", mesh=stage == 2)
    searcher = HandSearcher(num_threads=1)
    ann_root = root / "annotated" / "hgc_realworld"
    rows, hands = [], []
    for s in json.loads((ann_root / "annotations.json").read_text())["samples"]:
        img0 = load_image(ann_root / s["image"])
        K0 = np.array(s["K"], np.float64)
        gt0 = np.array(s["hands"][0]["xyz_cam_mm"], np.float64)
        true0 = s["hands"][0]["side"]
        wrist0 = np.asarray(s["hands"][0]["uv_px"][0], np.float64)
        for k, img_v, K_v, v in variants_with_K(img0, K0, aug, rng):
            for mirrored in (False, True):
                img = np.ascontiguousarray(img_v[:, ::-1]) if mirrored else img_v
                w = img.shape[1]
                K = mirror_K(K_v, w) if mirrored else K_v
                gt = gt0 * np.array([-1.0, 1, 1]) if mirrored else gt0
                true = other(true0) if mirrored else true0
                try:
                    found = pipe.detect(img)
                except NoHandError:
                    continue
                # the annotated hand, not a reflection of it at the variant's border (a mirrored hand)
                miss = [np.linalg.norm(unmap_points(d.keypoints2d[:1], v, w, mirrored)[0] - wrist0) for d in found]
                if min(miss) > 0.12 * max(img.shape[:2]):
                    continue
                dets = [found[int(np.argmin(miss))]]
                t0 = time.perf_counter()
                (dec,) = decide_sides(pipe.stage1.detector, img, dets, searcher=searcher)
                t_side = time.perf_counter() - t0
                label = SideEvidence.from_detection(dets[0]).label
                label_conf = dets[0].extra.get("label", (label, dets[0].score))[1]
                err = {}
                same = label == dec.side == true
                for side in (("left", "right") if not differing_only or not same else ()):
                    (r,) = pipe.estimate(img, dets[:1], K, n=n, steps=steps, side=side)
                    err[side] = float(pa_mpjpe(r.aggregate_joints * 1000, gt))
                hands.append({"label": label, "decision": dec.side, "true": true, "t_side_s": t_side})
                if not err:
                    continue
                rows.append({"image": s["image"], "variant": k, "mirrored": mirrored, "true": true, "label": label,
                             "label_conf": label_conf,
                             "decision": dec.side, "decided_by": dec.decided_by, "confidence": dec.confidence,
                             "err_left": err["left"], "err_right": err["right"], "t_side_s": t_side})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    pipe.stage1.detector.close()
    out = {"stage": 2 if pipe.has_mesh else 1, "n_hyp": n, "steps": steps, "aug": aug,
           "differing_only": differing_only,
           "rows": rows}
    for part, sel in (("original", [r for r in rows if not r["mirrored"]]),
                      ("mirrored", [r for r in rows if r["mirrored"]]),
                      ("both", rows)):
        d = {"n": len(sel), "decision_differs": int(sum(r["decision"] != r["label"] for r in sel))}
        if not sel:
            continue
        for key in ("label", "decision", "true"):
            e = [r[f"err_{r[key]}"] for r in sel]
            d[key] = {"mean": float(np.mean(e)), "median": float(np.median(e)),
                      "wrong_side": int(sum(r[key] != r["true"] for r in sel))}
        out[part] = d
    out["all_hands"] = {"n": len(hands), "label_wrong": sum(h["label"] != h["true"] for h in hands),
                        "decision_wrong": sum(h["decision"] != h["true"] for h in hands)}
    out["t_side_median_s"] = float(np.median([h["t_side_s"] for h in hands]))
    with open("/proc/loadavg") as f:
        out["loadavg_1min_at_end"] = float(f.read().split()[0])
    return out


def time_side(image_path: pathlib.Path | None = None, repeats: int = 20) -> dict:
    """Time of the side decision for one hand at one thread (the sample photo unless `image_path`): the
    older rule (label + mirror check only for unsure labels; the sample's label is sure, so nothing),
    the mirror check, the view vote alone, and both (the default); median wall and CPU time (ms) and the
    load average, since this box is shared."""
    import os
    import statistics

    import torch

    from core.detector import HandDetector
    from core.hand_search import HandSearcher
    from core.io.images import load_image
    from core.paths import SAMPLE_IMAGE
    from core.side import decide_sides

    torch.set_num_threads(1)
    img = load_image(image_path or SAMPLE_IMAGE)
    searcher = HandSearcher(num_threads=1)
    out = {}
    with HandDetector() as det:
        dets = det.detect(img)[:1]
        for name, kw in (("no_views", {"views": False}), ("mirror_check_only", {"views": False}),
                         ("views_only", {"mirror_check": False}), ("mirror_check_and_views", {})):
            if name == "mirror_check_only":        # the older rule on an unsure label: the mirror check runs
                dets[0].extra["label"] = (dets[0].handedness, 0.6)
            wall, cpu = [], []
            for r in range(repeats + 1):
                t0, c0 = time.perf_counter(), time.process_time()
                decide_sides(det, img, dets, searcher=searcher, **kw)
                if r:
                    wall.append((time.perf_counter() - t0) * 1000)
                    cpu.append((time.process_time() - c0) * 1000)
            dets[0].extra.pop("label", None)
            out[name] = {"wall_ms": statistics.median(wall), "cpu_ms": statistics.median(cpu)}
    out["loadavg_1min"] = os.getloadavg()[0]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--real-data", type=pathlib.Path)
    c.add_argument("--renders", type=pathlib.Path, help="folder of make_dataset shards (with images)")
    c.add_argument("--limit", type=int, default=200, help="renders to use")
    c.add_argument("--aug", type=int, default=12, help="random variants per image (besides the image)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--views", action="store_true",
                   help="also the landmark model's readings of several views of each hand (collect_views)")
    c.add_argument("--out", type=pathlib.Path, required=True)
    q = sub.add_parser("pampjpe")
    q.add_argument("--real-data", type=pathlib.Path, default=pathlib.Path("../shared/realdata"))
    q.add_argument("--stage", type=int, choices=[1, 2], default=2)
    q.add_argument("-n", type=int, default=50)
    q.add_argument("--steps", type=int, default=10)
    q.add_argument("--aug", type=int, default=0, help="random variants per crop as well")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--differing-only", action="store_true",
                   help="lift only hands where the label, the decision and the true side are not all the same")
    q.add_argument("--out", type=pathlib.Path, required=True)
    lf = sub.add_parser("lift", help="collect + each (unsure) hand lifted both ways: spread, reprojection, "
                                     "DPoser plausibility")
    lf.add_argument("--real-data", type=pathlib.Path)
    lf.add_argument("--renders", type=pathlib.Path)
    lf.add_argument("--limit", type=int, default=200)
    lf.add_argument("--aug", type=int, default=12)
    lf.add_argument("--seed", type=int, default=0)
    lf.add_argument("-n", type=int, default=20)
    lf.add_argument("--steps", type=int, default=10)
    lf.add_argument("--all", action="store_true", help="lift every hand (default: labels below 0.9 only)")
    lf.add_argument("--out", type=pathlib.Path, required=True)
    lr = sub.add_parser("lift-report")
    lr.add_argument("files", nargs="+", type=pathlib.Path)
    r = sub.add_parser("report")
    r.add_argument("files", nargs="+", type=pathlib.Path)
    r.add_argument("--half", type=int, choices=[0, 1], help="only the images of this half (`image_half`)")
    r.add_argument("--brief", action="store_true", help="originals and mirrored together only")
    r.add_argument("--json", action="store_true", help="also the full counts as JSON")
    vr = sub.add_parser("views-report", help="each recorded view alone: wrong sides by handedness and chirality")
    vr.add_argument("file", type=pathlib.Path, help="a `collect --views` file")
    tm = sub.add_parser("time", help="time of the side decision per hand at one thread (wall and CPU)")
    tm.add_argument("--image", type=pathlib.Path)
    tm.add_argument("--repeats", type=int, default=20)
    ru = sub.add_parser("rules", help="variants of the decision rule (RULES) on `collect --views` files")
    ru.add_argument("files", nargs="+", type=pathlib.Path)
    t = sub.add_parser("tune", help="choose the view vote's constants on one half of the images, report on the "
                                    "other (both ways)")
    t.add_argument("file", type=pathlib.Path, help="a `collect --views` file")
    args = ap.parse_args(argv)
    if args.what == "collect":
        from core.detector import HandDetector

        t0 = time.time()
        extra = None
        if args.views:
            from core.hand_search import HandSearcher

            extra = view_extra(HandSearcher(num_threads=1), collect_views())
        with HandDetector() as det:
            rows = []
            if args.real_data is not None:
                rows += collect_real(det, args.real_data, args.aug, args.seed, extra)
            if args.renders is not None:
                rows += collect_renders(det, args.renders, args.aug, args.seed, args.limit, extra)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"argv": argv or sys.argv[1:], "rows": rows}))
        print(f"{len(rows)} rows -> {args.out} ({time.time() - t0:.0f} s)")
        return 0
    if args.what == "lift":
        t0 = time.time()
        rows = collect_lift(args.real_data, args.renders, args.aug, args.seed, args.limit, not args.all, args.n,
                            args.steps)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"argv": argv or sys.argv[1:], "rows": rows}))
        print(f"{len(rows)} rows -> {args.out} ({time.time() - t0:.0f} s)")
        return 0
    if args.what == "lift-report":
        for f in args.files:
            rows = json.loads(f.read_text())["rows"]
            groups = sorted({r["group"] for r in rows})
            for g in groups + (["all"] if len(groups) > 1 else []):
                print(f"\n{f} {g}")
                print("\n".join(lift_report([r for r in rows if g in ("all", r["group"])])))
        return 0
    if args.what == "views-report":
        print("\n".join(views_report(json.loads(args.file.read_text())["rows"])))
        return 0
    if args.what == "time":
        print(json.dumps(time_side(args.image, args.repeats), indent=1))
        return 0
    if args.what == "rules":
        print("\n".join(rules_report(args.files)))
        return 0
    if args.what == "tune":
        lines, _ = tune(json.loads(args.file.read_text())["rows"])
        print("\n".join(lines))
        return 0
    if args.what == "pampjpe":
        res = eval_pampjpe(args.real_data, args.stage, args.n, args.steps, args.aug, args.seed, args.differing_only)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=1))
        print(json.dumps({k: v for k, v in res.items() if k != "rows"}, indent=1))
        return 0
    print(TABLE_HEAD)
    for f in args.files:
        rows = json.loads(f.read_text())["rows"]
        if args.half is not None:
            rows = [r for r in rows if image_half(r["image"]) == args.half]
        groups = sorted({r["group"] for r in rows})
        for g in groups + (["all"] if len(groups) > 1 else []):
            for part, mirrored in (("originals", False), ("mirrored", True), ("both", None)):
                sel = [r for r in rows if g in ("all", r["group"]) and mirrored in (None, r["mirrored"])]
                if not sel or (args.brief and part != "both"):
                    continue
                res = summarise(sel)
                if args.json:
                    print(f, g, part, json.dumps(res))
                half = "" if args.half is None else f" half {args.half}"
                print(markdown_row(f"{f.stem}{half} {g}, {part}", res))
    return 0


def alternative_side(r: dict, idx: list[int], weight: float = 8.0, handedness_weight: float = 0.0,
                     margin: float = 0.0, both_disagree: bool = False) -> str:
    """One recorded hand's side under a variant of `core.side.decide_side` (for `rules`): the label and
    mirror check averaged, + `weight` × the chirality vote of the views `idx`, + `handedness_weight` × the
    views' handedness log-odds; a confident label (≥ 0.9) is overturned only when the sum is ≥ `margin` on
    the other side and, with `both_disagree`, only when the mirror check and the view vote (≥ 0.1) both
    disagree with it. Session 12's rule: weight 8, the rest off; today's: `SHIPPED`."""
    from core.side import CHIRALITY_MIN, CONFIDENT_LABEL, CONFIDENT_VOTE, ViewReadings, _logit, p_right, views_log_odds

    pl = p_right(r["label"], r["conf"])
    m = r.get("mirror_p_right")
    pr = pl if m is None else 0.5 * (pl + m)
    rd = ViewReadings(*(np.asarray(r["views"][k], np.float64)[idx] for k in ("p", "pres", "ch")))
    vote = float(np.mean(np.where(np.abs(rd.chirality) >= CHIRALITY_MIN, np.sign(rd.chirality), 0.0)))
    score = _logit(pr) + weight * vote + handedness_weight * views_log_odds(rd)
    side = r["label"] if score == 0 else ("right" if score > 0 else "left")
    if side != r["label"] and r["conf"] >= CONFIDENT_LABEL:
        sign = 1.0 if r["label"] == "right" else -1.0
        if -sign * score < margin:
            side = r["label"]
        elif both_disagree and not (m is not None and sign * (m - 0.5) < 0 and -sign * vote >= CONFIDENT_VOTE):
            side = r["label"]
    return side


#: `alternative_side`'s arguments for the shipped rule (core.side's constants).
SHIPPED = {"weight": 8.0, "handedness_weight": 0.5, "both_disagree": True}
_TEN = "upright, ±15°, zoom (10)"
#: The variants `rules` compares: (name, view set of `candidate_view_sets`, `alternative_side` arguments).
RULES = (("session 12: 10 views, vote weight 8, sum decides", _TEN, {}),
         ("session 12 with margin 4", _TEN, {"margin": 4.0}),
         ("+ views' handedness ×0.5, sum decides", _TEN, {"handedness_weight": 0.5}),
         ("+ views' handedness ×0.5, margin 4", _TEN, {"handedness_weight": 0.5, "margin": 4.0}),
         ("confident label: mirror check and views both disagree", _TEN, {"both_disagree": True}),
         ("**shipped**: both disagree + views' handedness ×0.5", _TEN, SHIPPED),
         ("shipped with handedness ×0.25", _TEN, dict(SHIPPED, handedness_weight=0.25)),
         ("shipped with handedness ×1", _TEN, dict(SHIPPED, handedness_weight=1.0)),
         ("shipped with 22 views", "±15°, ±30°, zoom, shifts (22)", SHIPPED),
         ("22 views, vote weight 8, margin 4", "±15°, ±30°, zoom, shifts (22)", {"margin": 4.0}))


def rules_report(files: list[pathlib.Path]) -> list[str]:
    """Wrong sides and confident correct labels broken for each of `RULES` on each `collect --views` file."""
    sets = candidate_view_sets()
    data = {f.stem: json.loads(f.read_text())["rows"] for f in files}
    head = "| rule | " + " | ".join(f"{k}: wrong (label wrong), conf. broken" for k in data) + " |"
    lines = [head, "|" + "---|" * (len(data) + 1)]
    for name, views, kw in RULES:
        idx = view_indices(sets[views])
        cells = []
        for rows in data.values():
            chosen = [alternative_side(r, idx, **kw) for r in rows]
            wrong = sum(c != r["true"] for c, r in zip(chosen, rows))
            label_wrong = sum(r["label"] != r["true"] for r in rows)
            broken = sum(c != r["true"] and r["label"] == r["true"] and r["conf"] >= 0.9 for c, r in zip(chosen, rows))
            cells.append(f"{wrong} ({label_wrong}), {broken}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def views_report(rows: list[dict]) -> list[str]:
    """Each recorded view alone (`collect_views`): hands whose side it gets wrong by its handedness
    (P(right) > 0.5) and by its chirality's sign, of them how many where the label is wrong, and its
    median hand presence."""
    views = collect_views()
    true = np.array([r["true"] == "right" for r in rows])
    label_wrong = np.array([r["label"] != r["true"] for r in rows])
    p = np.array([r["views"]["p"] for r in rows])
    ch = np.array([r["views"]["ch"] for r in rows])
    pres = np.array([r["views"]["pres"] for r in rows])
    out = [f"{len(rows)} hands, label wrong on {int(label_wrong.sum())}",
           "| view (turn °, zoom, shift, mirrored) | handedness wrong | … where the label is wrong | "
           "chirality wrong | … where the label is wrong | median presence |", "|---|---|---|---|---|---|"]
    for i, v in enumerate(views):
        hw = (p[:, i] > 0.5) != true
        cw = (ch[:, i] > 0) != true
        out.append(f"| {v.turn:g}, {v.zoom:g}, {v.shift[0]:g}/{v.shift[1]:g}, {'yes' if v.mirrored else 'no'} | "
                   f"{int(hw.sum())} | {int((hw & label_wrong).sum())} | {int(cw.sum())} | "
                   f"{int((cw & label_wrong).sum())} | {np.median(pres[:, i]):.2f} |")
    return out


def image_half(name: str) -> int:
    """Which half of the images an image belongs to (0 / 1, by a CRC of its name): `tune` chooses the
    constants on one half and reports on the other."""
    import zlib

    return zlib.crc32(name.encode()) % 2


def candidate_view_sets() -> dict[str, list]:
    """The view sets `tune` chooses among (each closed under mirroring)."""
    from core.side import VIEWS

    allv = [v for v in collect_views() if v.turn not in (90, 180, 270)]
    return {"upright (2)": [v for v in allv if v.turn == 0 and v.zoom == 1 and v.shift == (0, 0)],
            "upright, zoom (6)": [v for v in allv if v.turn == 0 and v.shift == (0, 0)],
            "upright, ±15°, zoom (10)": list(VIEWS),
            "±15°, ±30°, zoom, shifts (22)": allv}


TUNE_WEIGHTS = (4.0, 6.0, 8.0, 10.0, 12.0, 16.0)
TUNE_MIN_CHIRALITY = (0.05, 0.1, 0.2)


def tune(rows: list[dict]) -> tuple[list[str], dict]:
    """Two-fold choice of the view vote's constants by image (`image_half`): for each half, the setting
    (view set × VIEW_VOTE_WEIGHT × CHIRALITY_MIN) with the fewest wrong sides there among those that turn
    no confident (≥ 0.9) correct label wrong (ties: fewer views, then a smaller weight), and its counts
    on the other half (held out). Returns the table and the two choices."""
    import itertools

    import core.side as side

    keep = side.VIEW_VOTE_WEIGHT
    halves = [[r for r in rows if image_half(r["image"]) == h] for h in (0, 1)]
    sets = candidate_view_sets()
    results = []
    try:
        for (name, views), w, cmin in itertools.product(sets.items(), TUNE_WEIGHTS, TUNE_MIN_CHIRALITY):
            side.VIEW_VOTE_WEIGHT = w
            counts = []
            for part in halves:
                dec = decisions(part, views=views, min_chirality=cmin)
                wrong = sum(d.side != r["true"] for d, r in zip(dec, part))
                broke = sum(d.side != r["true"] and r["label"] == r["true"] and r["conf"] >= 0.9
                            for d, r in zip(dec, part))
                broke_any = sum(d.side != r["true"] and r["label"] == r["true"] for d, r in zip(dec, part))
                counts.append((wrong, broke, broke_any))
            results.append(((name, len(views), w, cmin), counts))
    finally:
        side.VIEW_VOTE_WEIGHT = keep
    label = [sum(r["label"] != r["true"] for r in part) for part in halves]
    out = [f"halves: {len(halves[0])} / {len(halves[1])} hands of {len({r['image'] for r in halves[0]})} / "
           f"{len({r['image'] for r in halves[1]})} images; label wrong {label[0]} / {label[1]}",
           "| tuned on | chosen: views, weight, min. chirality | wrong there | held-out half: label wrong | "
           "decision wrong | confident correct labels broken | any correct label broken |",
           "|---|---|---|---|---|---|---|"]
    chosen = {}
    for h in (0, 1):
        ok = [x for x in results if x[1][h][1] == 0]
        best = min(ok, key=lambda x: (x[1][h][0], x[0][1], x[0][2]))
        (name, _, w, cmin), counts = best
        chosen[h] = best[0]
        o = counts[1 - h]
        out.append(f"| half {h} | {name}, {w:g}, {cmin:g} | {counts[h][0]} | {label[1 - h]} | **{o[0]}** | {o[1]} | "
                   f"{o[2]} |")
    tot = [sum(x[1][h][0] for h in (0, 1)) for x in results]
    shipped = [x for x in results if x[0][0] == "upright, ±15°, zoom (10)" and x[0][2] == keep
               and x[0][3] == side.CHIRALITY_MIN]
    if shipped:
        c = shipped[0][1]
        out.append(f"shipped setting (10 views, {keep:g}, {side.CHIRALITY_MIN:g}): wrong {c[0][0]} / {c[1][0]} "
                   f"(broke confident {c[0][1]} / {c[1][1]}); best of all {len(results)} settings on all rows: "
                   f"{min(tot)}")
    return out, chosen


TABLE_HEAD = ("| set | hands | label alone | label wrong | decision | decision wrong | fixed | broken (conf. / any) "
              "| no views (older rule) | no mirror check |\n|---|---|---|---|---|---|---|---|---|---|")


def markdown_row(name: str, s: dict) -> str:
    """One row of TABLE_HEAD: confusion (true → chosen) and wrong sides of the label and of the decision,
    labels fixed / broken, and the wrong sides of the decision without views and without the mirror check
    (the latter '—' when the rows have no views)."""
    def cm(m):
        return f"L→L {m[0][0]}, L→R {m[0][1]}, R→L {m[1][0]}, R→R {m[1][1]}"
    return (f"| {name} | {s['n']} | {cm(s['label'])} | **{s['label_wrong']}** | {cm(s['decision'])} | "
            f"**{s['decision_wrong']}** | {s['decision_fixed']} | {s['decision_broke_confident']} / "
            f"{s['decision_broke_any']} | {s['decision_no_views_wrong']} | {s['decision_no_mirror_wrong']} |")


if __name__ == "__main__":
    raise SystemExit(main())
