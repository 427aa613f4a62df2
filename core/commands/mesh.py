"""`pose-viewer mesh POSE --out FILE.(obj|ply|glb)`: the mesh of a pose file, headless."""
from __future__ import annotations

import argparse
import pathlib

import numpy as np
import torch

from core.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    from core.cli import add_common_options

    p = sub.add_parser("mesh", help="write the mesh of a pose file (.npz with pose parameters)",
                       description="Write the hand mesh of a pose file (our .npz with 'pose').")
    p.add_argument("pose", help="pose file (.npz with 'pose' and 'global_orient')")
    p.add_argument("--out", required=True, help="output mesh file: .obj, .ply or .glb")
    p.add_argument("--mano-dir", help="folder holding MANO_RIGHT.pkl (for model='mano' pose files)")
    add_common_options(p)
    p.set_defaults(func=run)


def mesh_from_pose_file(path: str, mano_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V,3), faces) of the pose stored in a pose file; left hands are mirrored back."""
    from core.hand import load_hand_model
    from core.io.poses import load_pose_file
    from core.joints import mirror_faces, mirror_x

    pf = load_pose_file(path)
    if pf.pose is None:
        raise InputError("the file has joints but no pose parameters; run `pose-viewer complete` on it "
                         "to fit a pose first")
    model = load_hand_model(pf.model, mano_dir=mano_dir)
    shape = None
    if pf.shape is not None:
        if pf.shape.shape[0] != model.shape_dim:
            raise InputError(f"'shape' has {pf.shape.shape[0]} values; the {model.name} model takes {model.shape_dim}")
        shape = torch.from_numpy(pf.shape)[None]
    with torch.inference_mode():
        out = model(torch.from_numpy(pf.global_orient)[None], torch.from_numpy(pf.pose)[None], shape)
    verts = out.vertices[0].cpu().numpy()
    faces = model.faces
    if pf.side == "left":
        verts, faces = mirror_x(verts), mirror_faces(faces)
    return verts, faces


def run(args: argparse.Namespace) -> int:
    from core.cli import run_each
    from core.hand.base import HandModelError
    from core.io.export import MESH_FORMATS, save_mesh

    out = pathlib.Path(args.out)
    if out.suffix.lower().lstrip(".") not in MESH_FORMATS:
        raise InputError(f"{out}: unsupported mesh format (use .obj, .ply or .glb)")

    def handle(path: str) -> None:
        try:
            verts, faces = mesh_from_pose_file(path, args.mano_dir)
        except HandModelError as exc:
            raise InputError(str(exc)) from exc
        save_mesh(out, verts, faces)
        print(f"wrote {out}")

    return run_each([args.pose], handle, args.debug)
