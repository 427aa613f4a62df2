"""Detection table of issue 26: hands found / false hands / time per image for palm, search and auto.

Ground truth: `training/data/visible_hands.json` (clearly visible hands per photo, counted by eye, with an
approximate centre and size per hand). A detection is *found* when it is matched one-to-one (greedy,
nearest first) to a visible hand whose centre lies within half the hand's size of the detection's
keypoint-box centre and whose size is within a factor 2 of it; every other detection is *false*.
Variants test robustness without new data: `mirror` (flipped left-right), `half` (scaled to 50 %) and
`rot90` (turned a quarter clockwise); `--composites N` adds N canvases of several annotated crops each
(small hands, several per image, keypoints known); `--closeups Z …` replaces the images by close-ups of
each located hand, Z × the frame (big hands cut by the frame's edges). With palm and search both run,
auto (every hand wanted) is their two results merged, as `find_hands` does, and its time is theirs.
Where the palm detector and the search both match one visible hand, their mean keypoint distance (px) is
reported. `--annotated DIR` adds the real annotated crops (one hand each; hgc_realworld has keypoints).

    OMP_NUM_THREADS=1 python -m training.eval_detection --photos ../shared/realdata/photos \\
        --annotated ../shared/realdata/annotated --json runs/detection.json
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

from core.detector import Detection
from core.errors import NoHandError

TRUTH = pathlib.Path(__file__).resolve().parent / "data" / "visible_hands.json"
VARIANTS = ("orig", "mirror", "half", "rot90")


def _box_centre_size(kp: np.ndarray) -> tuple[np.ndarray, float]:
    lo, hi = kp.min(0), kp.max(0)
    return (lo + hi) / 2, float(max(hi - lo))


def match(dets: list[Detection], hands: list[dict]) -> list[tuple[int, int]]:
    """Greedy one-to-one (detection index, hand index) pairs, nearest first (see module doc)."""
    pairs = []
    for i, d in enumerate(dets):
        c, s = _box_centre_size(d.keypoints2d)
        for j, h in enumerate(hands):
            if h.get("any"):   # a crop known to hold one hand, location not annotated
                pairs.append((0.0, i, j))
                continue
            dist = float(np.linalg.norm(c - np.asarray(h["c"], float)))
            if dist < 0.5 * h["size"] and 0.5 < s / h["size"] < 2.0:
                pairs.append((dist, i, j))
    used_d, used_h, out = set(), set(), []
    for _, i, j in sorted(pairs):
        if i not in used_d and j not in used_h:
            used_d.add(i), used_h.add(j), out.append((i, j))
    return out


def _variant(rgb: np.ndarray, hands: list[dict], name: str) -> tuple[np.ndarray, list[dict]]:
    import cv2

    if name == "orig":
        return rgb, hands
    if name == "mirror":
        w = rgb.shape[1]
        return (np.ascontiguousarray(rgb[:, ::-1]),
                [dict(h, c=[w - h["c"][0], h["c"][1]]) if "c" in h else h for h in hands])
    if name == "rot90":   # turned a quarter clockwise: (x, y) → (H - y, x)
        h = rgb.shape[0]
        return (np.ascontiguousarray(np.rot90(rgb, -1)),
                [dict(h_, c=[h - h_["c"][1], h_["c"][0]]) if "c" in h_ else h_ for h_ in hands])
    if name == "half":
        small = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)
        return small, [dict(h, c=[h["c"][0] / 2, h["c"][1] / 2], size=h["size"] / 2) if "c" in h else h
                       for h in hands]
    raise ValueError(name)


def load_items(photos: pathlib.Path | None, annotated: pathlib.Path | None, truth: pathlib.Path) -> list[dict]:
    """(name, path, hands) for every photo with a count, and the annotated crops (one hand each)."""
    items = []
    if photos is not None:
        doc = json.loads(truth.read_text())
        for name, hands in doc["hands"].items():
            p = photos / name
            if p.exists():
                items.append(dict(name=name, path=p, hands=hands, set="photos"))
    if annotated is not None:
        ann = annotated / "hgc_realworld" / "annotations.json"
        if ann.exists():
            for s in json.loads(ann.read_text())["samples"]:
                uv = np.asarray(s["hands"][0]["uv_px"], float)
                lo, hi = uv.min(0), uv.max(0)
                items.append(dict(name=s["image"], path=ann.parent / s["image"], set="hgc_realworld",
                                  hands=[dict(c=((lo + hi) / 2).tolist(), size=float(max(hi - lo)))]))
        for p in sorted((annotated / "freihand_eval_K_only").glob("*.jpg")):
            items.append(dict(name=p.name, path=p, set="freihand_eval", hands=[dict(any=True, size=1)]))
    return items


def composites(annotated: pathlib.Path, n: int, seed: int = 0, size: tuple[int, int] = (1024, 768)) -> list[dict]:
    """`n` canvases, each holding 4-6 of the annotated hgc_realworld crops (one real left hand each, keypoints
    known) shrunk to 80-260 px at random non-overlapping places on a smooth random background: small hands,
    several per image, in layouts no threshold was chosen on. Truth = the crops' keypoint boxes, moved."""
    import cv2

    ann = annotated / "hgc_realworld" / "annotations.json"
    samples = json.loads(ann.read_text())["samples"]
    rng = np.random.default_rng(seed)
    w, h = size
    out = []
    for k in range(n):
        field = rng.uniform(40, 215, (6, 8, 3)).astype(np.float32)
        canvas = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
        canvas = np.clip(canvas + rng.normal(0, 6, canvas.shape), 0, 255).astype(np.uint8)
        placed, hands = [], []
        for i in rng.permutation(len(samples))[: int(rng.integers(4, 7))]:
            s = samples[i]
            side = int(rng.integers(80, 261))
            for _ in range(200):
                x0, y0 = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
                if all(x0 + side <= a or a + b <= x0 or y0 + side <= c or c + b <= y0 for a, c, b in placed):
                    break
            else:
                continue
            crop = cv2.cvtColor(cv2.imread(str(ann.parent / s["image"])), cv2.COLOR_BGR2RGB)
            f = side / crop.shape[1]
            canvas[y0:y0 + side, x0:x0 + side] = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
            uv = np.asarray(s["hands"][0]["uv_px"], float) * f + [x0, y0]
            lo, hi = uv.min(0), uv.max(0)
            placed.append((x0, y0, side))
            hands.append(dict(c=((lo + hi) / 2).tolist(), size=float(max(hi - lo))))
        out.append(dict(name=f"composite_{k:02d}", rgb=canvas, set="composites", hands=hands))
    return out


def _read_rgb(it: dict) -> np.ndarray | None:
    """The item's image as RGB (its `rgb`, or read from its `path`); None, with a line on stderr, when the
    file cannot be read."""
    import cv2

    if "rgb" in it:
        return it["rgb"]
    bgr = cv2.imread(str(it["path"]))
    if bgr is None:
        print(f"skipped (unreadable): {it['path']}", file=sys.stderr)
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def closeups(items: list[dict], zooms: list[float], n: int = 256) -> list[dict]:
    """Close-ups: for every located hand of `items` and every zoom z, an n × n image centred on the hand with
    the hand z × the frame (z > 1: cut by the frame on every side; zero outside the source image), the way
    a studio frame or a phone held close shows a hand. Truth = that hand and any other hand whose centre
    lands inside the frame."""
    import cv2

    out = []
    for it in items:
        located = [h for h in it["hands"] if "c" in h]
        if not located:
            continue
        rgb = _read_rgb(it)
        if rgb is None:
            continue
        for k, h in enumerate(located):
            for z in zooms:
                f = n * z / h["size"]                          # source px → close-up px
                A = np.array([[f, 0, n / 2 - f * h["c"][0]], [0, f, n / 2 - f * h["c"][1]]])
                img = cv2.warpAffine(rgb, A, (n, n), flags=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT)
                hands = []
                for o in located:
                    c = A[:, :2] @ np.asarray(o["c"], float) + A[:, 2]
                    if o is h or (0 <= c[0] < n and 0 <= c[1] < n):
                        hands.append(dict(c=c.tolist(), size=o["size"] * f))
                out.append(dict(name=f"{pathlib.Path(it['name']).stem}_hand{k}_x{z:g}", rgb=img, hands=hands,
                                set=f"{it['set']}-closeup-x{z:g}"))
    return out


def evaluate(items: list[dict], modes: list[str], variants: list[str], overlays: pathlib.Path | None = None,
             threads: int = 2, config=None) -> dict:
    from core.detector import HandDetector
    from core.hand_search import HandSearcher, find_hands, merge_detections

    modes = [m for m in ("palm", "search", "auto") if m in modes]   # auto reuses palm and search
    det, searcher = HandDetector(), HandSearcher(num_threads=threads)
    rows = []
    for it in items:
        rgb0 = _read_rgb(it)
        if rgb0 is None:
            continue
        for var in variants:
            rgb, hands = _variant(rgb0, it["hands"], var)
            per_mode: dict[str, list[Detection]] = {}
            row = dict(name=it["name"], set=it["set"], variant=var, visible=len(hands))
            for mode in modes:
                t, n0 = time.perf_counter(), searcher.evaluations
                if mode == "auto" and "palm" in per_mode and "search" in per_mode:
                    # auto with every hand wanted = the palm detector's hands merged with the search's
                    # (what find_hands does): reuse both runs rather than repeat them; its time is theirs.
                    dets = merge_detections(per_mode["palm"], per_mode["search"])
                    row["auto_s"] = row["palm_s"] + row["search_s"]
                    row["auto_evals"] = row["search_evals"]
                else:
                    try:
                        dets = find_hands(rgb, mode, want_all=True, detector=det, searcher=searcher,
                                          config=config)
                    except NoHandError:
                        dets = []
                    row[f"{mode}_s"] = time.perf_counter() - t
                    row[f"{mode}_evals"] = searcher.evaluations - n0
                m = match(dets, hands)
                row[f"{mode}_found"], row[f"{mode}_false"] = len(m), len(dets) - len(m)
                ok = {i for i, _ in m}
                row[f"{mode}_dets"] = [dict(source=d.extra.get("source"), found=i in ok,
                                            presence=d.extra.get("presence"), verify=d.extra.get("verify"),
                                            size=float(np.ptp(d.keypoints2d, 0).max() / min(rgb.shape[:2])))
                                       for i, d in enumerate(dets)]
                per_mode[mode] = dets
                if overlays is not None:
                    _overlay(rgb, dets, m, hands, overlays / f"{mode}_{var}_{pathlib.Path(it['name']).stem}.png")
            if "palm" in per_mode and "search" in per_mode:
                mp = {j: i for i, j in match(per_mode["palm"], hands)}
                ms = {j: i for i, j in match(per_mode["search"], hands)}
                row["kp_dist_px"] = [float(np.linalg.norm(per_mode["palm"][mp[j]].keypoints2d
                                                          - per_mode["search"][ms[j]].keypoints2d, axis=1).mean())
                                     for j in mp if j in ms]
            rows.append(row)
            print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()
                              if k != "kp_dist_px" and not k.endswith("_dets")}), flush=True)
    return dict(rows=rows, summary=summarise(rows, modes))


def summarise(rows: list[dict], modes: list[str]) -> dict:
    """Per (set, variant, mode): visible, found, false, images, mean and max seconds per image."""
    out = {}
    for key in sorted({(r["set"], r["variant"]) for r in rows}):
        rs = [r for r in rows if (r["set"], r["variant"]) == key]
        entry = {"images": len(rs), "visible": sum(r["visible"] for r in rs)}
        for mode in modes:
            ts = [r[f"{mode}_s"] for r in rs]
            entry[mode] = dict(found=sum(r[f"{mode}_found"] for r in rs),
                               false=sum(r[f"{mode}_false"] for r in rs),
                               mean_s=float(np.mean(ts)), max_s=float(np.max(ts)),
                               mean_evals=float(np.mean([r[f"{mode}_evals"] for r in rs])))
        kd = [d for r in rs for d in r.get("kp_dist_px", [])]
        if kd:
            entry["palm_vs_search_kp_px"] = dict(n=len(kd), mean=float(np.mean(kd)), median=float(np.median(kd)))
        out["/".join(key)] = entry
    return out


def _overlay(rgb: np.ndarray, dets: list[Detection], m: list[tuple[int, int]], hands: list[dict],
             path: pathlib.Path) -> None:
    import cv2

    from core.hand_search import tight_box

    path.parent.mkdir(parents=True, exist_ok=True)
    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    t = max(1, int(min(img.shape[:2]) / 300))
    for h in hands:
        if "c" in h:
            c, r = np.asarray(h["c"], int), int(h["size"] / 2)
            cv2.rectangle(img, tuple(c - r), tuple(c + r), (255, 255, 0), t)
    ok = {i for i, _ in m}
    for i, d in enumerate(dets):
        col = (0, 200, 0) if i in ok else (0, 0, 255)
        for p in d.keypoints2d:
            cv2.circle(img, tuple(int(v) for v in p), 2 * t, col, -1)
        b = tight_box(d.keypoints2d).astype(int)
        cv2.putText(img, f"{d.extra.get('source', '?')[0]}{d.handedness[0]}", tuple(b[:2]), 0, 0.5 * t, col, t)
    cv2.imwrite(str(path), img)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=pathlib.Path, help="folder of the photos named in --truth")
    ap.add_argument("--annotated", type=pathlib.Path, help="realdata/annotated (one hand per crop)")
    ap.add_argument("--truth", type=pathlib.Path, default=TRUTH)
    ap.add_argument("--modes", nargs="+", default=["palm", "search", "auto"], choices=["palm", "search", "auto"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--threads", type=int, default=2, help="LiteRT threads")
    ap.add_argument("--search", default="{}",
                    help='SearchConfig overrides as JSON, e.g. \'{"scales": [1.0, 0.5], "stride": 0.4}\'')
    ap.add_argument("--overlays", type=pathlib.Path, help="write PNG overlays here (green found, red false)")
    ap.add_argument("--json", type=pathlib.Path, help="write rows and summary here")
    ap.add_argument("--composites", type=int, default=0,
                    help="add this many canvases of several annotated crops each (needs --annotated)")
    ap.add_argument("--no-crops", action="store_true", help="with --annotated: the composites only, not the crops")
    ap.add_argument("--only", nargs="+", help="only images whose name contains one of these")
    ap.add_argument("--closeups", nargs="+", type=float,
                    help="instead of the images, close-ups of each located hand at these zooms (hand size / "
                         "frame size, e.g. 1.0 1.2 1.5; use with --variants orig)")
    a = ap.parse_args(argv)
    if a.photos is None and a.annotated is None:
        ap.error("give --photos and/or --annotated")
    for p in (a.photos, a.annotated):
        if p is not None and not p.is_dir():
            print(f"error: {p} is not a folder (the real data lives in ../shared/realdata)", file=sys.stderr)
            return 2
    from core.hand_search import SearchConfig

    over = json.loads(a.search)
    cfg = SearchConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in over.items()})
    items = load_items(a.photos, None if a.no_crops else a.annotated, a.truth)
    if a.composites:
        if a.annotated is None:
            ap.error("--composites needs --annotated")
        items += composites(a.annotated, a.composites)
    if a.only:
        items = [it for it in items if any(o in it["name"] for o in a.only)]
    if a.closeups:
        items = closeups(items, a.closeups)
    res = evaluate(items, a.modes, a.variants, a.overlays, a.threads, cfg)
    res["config"] = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}
    print(json.dumps(res["summary"], indent=1))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
