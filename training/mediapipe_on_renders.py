"""MediaPipe on synthetic Anny renders: detection rate, handedness, and its 2D error against the
projected Anny keypoints (per joint, as a fraction of the hand's box side). Informs the stage-1 2D
noise model (training/data/lifting.py) and writes the small test image used by tests/test_detector.py.

    python -m training.mediapipe_on_renders -n 200 --seed 1
    python -m training.mediapipe_on_renders --write-test-image resources/samples/anny_right_256.jpg
"""
from __future__ import annotations

import argparse
import os
import pathlib

import numpy as np
import torch

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


def render_samples(n: int, seed: int, prototypes=None):
    from core.hand.anny_hand import AnnyHand
    from core.pose_sampler import sample_poses, sample_shapes
    from training.data.camera import sample_camera, sample_orientations
    from training.data.render import HandRenderer

    rng = np.random.default_rng(seed)
    hand = AnnyHand()
    poses = sample_poses(n, rng, prototypes)
    shapes = sample_shapes(n, rng)
    orients = sample_orientations(n, rng, face_bias=0.9)
    with torch.no_grad():
        out = hand(torch.from_numpy(orients), torch.from_numpy(poses), torch.from_numpy(shapes))
    renderer = HandRenderer(hand.faces)
    for i in range(n):
        v = out.vertices[i].numpy().astype(np.float64)
        j = out.joints[i].numpy().astype(np.float64)
        cam = sample_camera(j - j[0], v - j[0], orients[i], rng)
        img = renderer.render(cam.vertices_cam, cam.K, rng)
        yield img, cam, poses[i], shapes[i]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--write-test-image", type=pathlib.Path)
    args = ap.parse_args(argv)
    from core.detector import HandDetector

    det = HandDetector()
    if args.write_test_image:
        import cv2
        for img, cam, pose, shape in render_samples(40, 7, prototypes=("open",)):
            try:
                d = det.detect(img)[0]
            except Exception:
                continue
            err = np.linalg.norm(d.keypoints2d - cam.kp2d, axis=1).mean()
            if d.handedness != "right" or err > 6:
                continue
            args.write_test_image.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(args.write_test_image), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
            np.savez(args.write_test_image.with_name(args.write_test_image.stem + "_gt.npz"), K=cam.K, joints_cam=cam.joints_cam,
                     kp2d=cam.kp2d, pose=pose, shape=shape)
            print(f"wrote {args.write_test_image} (MediaPipe error {err:.1f} px)")
            return 0
        print("no suitable render found")
        return 1

    errs, sides, found = [], [], 0
    for img, cam, _, _ in render_samples(args.n, args.seed):
        try:
            d = det.detect(img)[0]
        except Exception:
            continue
        found += 1
        side = (cam.kp2d.max(0) - cam.kp2d.min(0)).max()
        errs.append((d.keypoints2d - cam.kp2d) / side)
        sides.append(d.handedness)
    e = np.array(errs)
    norm = np.linalg.norm(e, axis=-1)
    print(f"detected {found}/{args.n}; handedness right {sides.count('right')}/{len(sides)}")
    print("mean error (fraction of box side) %.4f, median %.4f" % (norm.mean(), np.median(norm)))
    print("per joint mean:", np.round(norm.mean(0), 3).tolist())
    print("per joint median:", np.round(np.median(norm, 0), 3).tolist())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
