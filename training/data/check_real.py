"""Compare sampled hands with real 3D hand poses: joint bend angles and bone-length ratios.

    python -m training.data.check_real --real-data ../shared/realdata [--n 4000] [--seed 0]

Reads `annotated/hgc_realworld/annotations.json` under the real-data folder (LEFT hands, mirrored to
right hands), samples `n` poses and shapes with core.pose_sampler through the Anny hand and prints
Markdown tables: per joint, the bend angle (degrees between the incoming and outgoing bone vectors) of
real vs sampled hands, the spread angle between neighbouring proximal phalanges, and bone lengths
relative to the palm length (wrist → middle MCP). Nothing from the real-data folder is written.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from core.joints import JOINT_NAMES, PARENTS, mirror_x

#: Joints at which a bend angle is measured (every joint with a parent and a child, tips excluded).
BEND_JOINTS = (1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19)
#: Pairs of proximal phalanges (MCP → PIP bones) whose angle measures spread (abduction).
SPREAD_PAIRS = ((5, 9), (9, 13), (13, 17))


def bend_angles(j: np.ndarray) -> np.ndarray:
    """(n,21,3) → (n,15) degrees: angle between (joint − parent) and (child − joint) at BEND_JOINTS."""
    out = []
    for k in BEND_JOINTS:
        a, b = j[:, k] - j[:, PARENTS[k]], j[:, k + 1] - j[:, k]
        cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
        out.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.stack(out, 1)


def spread_angles(j: np.ndarray) -> np.ndarray:
    """(n,21,3) → (n,3) degrees between neighbouring proximal phalanges (index-middle, …, ring-pinky)."""
    out = []
    for a, b in SPREAD_PAIRS:
        u, v = j[:, a + 1] - j[:, a], j[:, b + 1] - j[:, b]
        cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
        out.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.stack(out, 1)


def bone_ratios(j: np.ndarray) -> np.ndarray:
    """(n,21,3) → (n,20) bone lengths (child − parent) divided by the palm length |middle MCP − wrist|."""
    lengths = np.linalg.norm(j[:, 1:] - j[:, PARENTS[1:]], axis=-1)
    return lengths / lengths[:, 8:9]  # bone index 8 = joint 9 (middle MCP) − wrist


def palm_frame(j: np.ndarray) -> np.ndarray:
    """(n,21,3) → joints in a palm frame, in palm lengths: x toward the thumb side, y wrist → middle MCP,
    z the palm normal (palmar side positive for a right hand)."""
    y = j[:, 9] - j[:, 0]
    length = np.linalg.norm(y, axis=-1, keepdims=True)
    y = y / length
    z = np.cross(j[:, 5] - j[:, 0], j[:, 17] - j[:, 0])
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    x = np.cross(y, z)
    rot = np.stack([x, y, z], 1)
    return np.einsum("nij,nkj->nki", rot, j - j[:, :1]) / length[:, None]


def load_real(real_data: pathlib.Path) -> np.ndarray:
    """Real joints (n,21,3) metres as right hands (left hands mirrored in x)."""
    path = real_data / "annotated" / "hgc_realworld" / "annotations.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: pass the real-data folder with --real-data")
    data = json.loads(path.read_text())
    joints = []
    for s in data["samples"]:
        for h in s["hands"]:
            xyz = np.asarray(h["xyz_cam_mm"], dtype=np.float64) / 1000.0
            joints.append(mirror_x(xyz) if h["side"] == "left" else xyz)
    return np.stack(joints)


def sample_joints(n: int, seed: int) -> np.ndarray:
    """Joints (n,21,3) of sampled poses and shapes (canonical frame, metres)."""
    import torch

    from core.hand.anny_hand import AnnyHand
    from core.pose_sampler import sample_poses, sample_shapes

    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    hand = AnnyHand()
    pose = torch.from_numpy(sample_poses(n, rng))
    shape = torch.from_numpy(sample_shapes(n, rng))
    with torch.no_grad():
        return hand.joints(torch.zeros(n, 3), pose, shape).numpy().astype(np.float64)


def _table(title: str, names: list[str], real: np.ndarray, synth: np.ndarray, fmt: str) -> str:
    lines = [f"\n**{title}**\n",
             "| joint | real min | real median | real max | sampled 1% | sampled median | sampled 99% |",
             "|---|---|---|---|---|---|---|"]
    for i, name in enumerate(names):
        r, s = real[:, i], synth[:, i]
        vals = [r.min(), np.median(r), r.max(), np.percentile(s, 1), np.median(s), np.percentile(s, 99)]
        lines.append(f"| {name} | " + " | ".join(format(v, fmt) for v in vals) + " |")
    return "\n".join(lines)


def report(real: np.ndarray, synth: np.ndarray) -> str:
    """Markdown tables comparing real and sampled joints."""
    bone_names = [f"{JOINT_NAMES[PARENTS[c]]}→{JOINT_NAMES[c]}" for c in range(1, 21)]
    palm_real = np.linalg.norm(real[:, 9] - real[:, 0], axis=-1) * 1000
    palm_syn = np.linalg.norm(synth[:, 9] - synth[:, 0], axis=-1) * 1000
    head = (f"real hands: {len(real)}, sampled: {len(synth)}; palm length (wrist→middle MCP) real "
            f"{palm_real.min():.1f}-{palm_real.max():.1f} mm, sampled 1-99% "
            f"{np.percentile(palm_syn, 1):.1f}-{np.percentile(palm_syn, 99):.1f} mm")
    return "\n".join([
        head,
        _table("Bend angle at each joint (degrees)", [JOINT_NAMES[k] for k in BEND_JOINTS],
               bend_angles(real), bend_angles(synth), ".0f"),
        _table("Spread between neighbouring proximal phalanges (degrees)",
               ["index-middle", "middle-ring", "ring-pinky"], spread_angles(real), spread_angles(synth), ".0f"),
        _table("Bone length / palm length", bone_names, bone_ratios(real), bone_ratios(synth), ".2f"),
        _table("Thumb keypoints in the palm frame (palm lengths; x thumb side, y along the palm, z palmar)",
               [f"{JOINT_NAMES[k]} {ax}" for k in (1, 2, 4) for ax in "xyz"],
               palm_frame(real)[:, (1, 2, 4)].reshape(len(real), -1),
               palm_frame(synth)[:, (1, 2, 4)].reshape(len(synth), -1), ".2f"),
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real-data", type=pathlib.Path, required=True, help="the shared real-data folder")
    ap.add_argument("--n", type=int, default=4000, help="number of sampled hands")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        real = load_real(args.real_data)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(report(real, sample_joints(args.n, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
