"""`pose-viewer complete`: output keys and shapes, masks, left hands, errors (no real data needed)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.cli import main
from core.joints import FINGERTIPS, mirror_x


@pytest.fixture(scope="module")
def right_joints(anny_hand):
    from core.pose_sampler import sample_poses

    pose = sample_poses(1, 8)
    with torch.no_grad():
        j = anny_hand.joints(torch.tensor([[0.3, -0.2, 0.1]]), torch.from_numpy(pose))[0].numpy()
    return (1.1 * j + np.array([0.02, 0.01, 0.45], np.float32)).astype(np.float32)  # a bigger hand, camera frame


def _write_json(path, joints, **extra):
    path.write_text(json.dumps({"joints": np.asarray(joints).tolist(), **extra}))
    return path


def test_complete_json_writes_all_keys(tmp_path, right_joints, capsys):
    src = _write_json(tmp_path / "hand.json", right_joints)
    rc = main(["complete", str(src), "--out", str(tmp_path / "out"), "--mask", "4,8,12,16,20",
               "-n", "4", "--iters", "30", "--prior", "dposer"])
    assert rc == 0, capsys.readouterr().err
    with np.load(tmp_path / "out" / "hand.npz", allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    assert d["joints"].shape == (4, 21, 3) and d["pose"].shape == (4, 45)
    assert d["vertices"].shape[0] == 4 and d["vertices"].shape[2] == 3 and d["faces"].shape[1] == 3
    assert d["mask"].dtype == bool and d["mask"].sum() == 5 and d["mask"][list(FINGERTIPS)].all()
    assert np.allclose(d["observed"], right_joints)
    assert d["t_schedule"].shape == (30,) and d["t_schedule"][0] == pytest.approx(0.15)
    assert d["t_schedule"][-1] == pytest.approx(0.05)
    assert d["trajectory_joints"].shape == (31, 4, 21, 3)
    vis = ~d["mask"]
    err = np.linalg.norm(d["joints"][:, vis] - right_joints[vis], axis=-1).mean() * 1000
    assert err < 8.0, err   # visible joints stay where they were (mm, 30 iterations)


def test_left_hand_is_mirrored_in_and_out(tmp_path, right_joints, capsys):
    left = mirror_x(right_joints)
    src = _write_json(tmp_path / "left.json", left, side="left")
    rc = main(["complete", str(src), "--out", str(tmp_path), "--mask-preset", "finger:index", "-n", "2",
               "--iters", "40", "--prior", "none"])
    assert rc == 0, capsys.readouterr().err
    with np.load(tmp_path / "left.npz", allow_pickle=False) as z:
        joints, mask = z["joints"], z["mask"]
        assert str(z["side"]) == "left"
    assert mask[[5, 6, 7, 8]].all() and mask.sum() == 4
    err = np.linalg.norm(joints[:, ~mask] - left[~mask], axis=-1).mean() * 1000
    assert err < 8.0, err   # a left hand fitted without mirroring would be far off


def test_pose_npz_keeps_visible_pose_dims(tmp_path, pose_npz, capsys):
    from core.hand.pose_layout import pose_dims_moving_joint

    rc = main(["complete", str(pose_npz), "--out", str(tmp_path / "o"), "--mask", "8,12", "-n", "3",
               "--iters", "10", "--schedule", "fixed", "--prior", "l2"])
    assert rc == 0, capsys.readouterr().err
    src = np.load(pose_npz)["pose"]
    with np.load(tmp_path / "o" / "pose.npz") as z:
        pose, ts = z["pose"], z["t_schedule"]
    free = np.zeros(45, bool)
    for j in (8, 12):
        free[pose_dims_moving_joint(j)] = True
    assert np.allclose(pose[:, ~free], src[~free], atol=1e-6)
    assert not np.allclose(pose[:, free], src[free], atol=1e-3)
    assert np.all(ts == ts[0])


def test_errors_are_one_line_each_and_exit_2(tmp_path, right_joints, capsys):
    bad = tmp_path / "nan.json"
    j = right_joints.copy()
    j[3, 1] = np.nan
    bad.write_text(json.dumps({"joints": [[None if np.isnan(v) else float(v) for v in r] for r in j]}))
    missing = tmp_path / "missing.json"
    good = _write_json(tmp_path / "good.json", right_joints)
    rc = main(["complete", str(bad), str(missing), str(good), "--out", str(tmp_path / "o"),
               "--mask", "4", "-n", "2", "--iters", "5", "--prior", "none"])
    err = capsys.readouterr().err
    assert rc == 2
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 2 and "Traceback" not in err
    assert str(bad) in lines[0] and str(missing) in lines[1]
    assert (tmp_path / "o" / "good.npz").exists()        # the other inputs still ran
    rc = main(["complete", str(good), "--out", str(tmp_path / "o"), "--mask", "4,25"])
    assert rc == 2 and "error:" in capsys.readouterr().err
    rc = main(["complete", str(good), "--out", str(tmp_path / "o"), "--t-min", "0.3", "--t-max", "0.1"])
    assert rc == 2


def test_mask_presets():
    from core.io.poses import parse_mask
    from core.errors import InputError

    assert np.flatnonzero(parse_mask(None, "fingertips")).tolist() == list(FINGERTIPS)
    assert np.flatnonzero(parse_mask(None, "finger:pinky")).tolist() == [17, 18, 19, 20]
    r = parse_mask(None, "random:0.6", seed=1)
    assert r.sum() == 13 and np.array_equal(r, parse_mask(None, "random:0.6", seed=1))
    assert parse_mask("0, 4", None).sum() == 2 and parse_mask(None, None) is None
    for bad in ("finger:toe", "random:1.5", "nose"):
        with pytest.raises(InputError):
            parse_mask(None, bad)


def test_every_front_end_offers_core_priors_choices():
    """The schedule kinds, priors and defaults come from core.prior (one definition): `complete`, the GUI's
    `pose-viewer --complete` options, and the TTO defaults; importing them loads no torch (GUI start-up)."""
    import subprocess
    import sys

    from core.cli import build_parser
    from core.prior import PRIORS, SCHEDULES, TASK_RANGES, Schedule, TTOConfig
    from viewer.launch import gui_parser

    for parser in (build_parser()._subparsers._group_actions[0].choices["complete"], gui_parser()):
        acts = {a.dest: a for a in parser._actions}
        assert tuple(acts["schedule"].choices) == SCHEDULES and acts["schedule"].default == SCHEDULES[0]
        assert tuple(acts["prior"].choices) == PRIORS and acts["prior"].default == PRIORS[0]
    s = Schedule()
    assert (s.kind, s.t_max, s.t_min) == (SCHEDULES[0], *TASK_RANGES["completion"]) and TTOConfig().prior == PRIORS[0]
    code = "import sys, core.prior, viewer.launch; core.prior.SCHEDULES; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0, "core.prior's choices imported torch"
