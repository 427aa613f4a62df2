"""`pose-viewer infer`: result.npz contents, per-input errors, exit status."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest

from core.cli import main
from core.geometry import project
from core.paths import SAMPLE_IMAGE

DATA = pathlib.Path(__file__).parent / "data"
IMG = str(SAMPLE_IMAGE)


def test_infer_writes_result_npz(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["infer", IMG, "--out", str(out), "-n", "8", "--steps", "3", "--seed", "1", "--device", "cpu"]) == 0
    r = np.load(out / "anny_right_256" / "result.npz")
    assert r["keypoints2d"].shape == (21, 2) and r["keypoints2d_score"].shape == (21,)
    assert str(r["handedness"]) == "right"
    np.testing.assert_allclose(r["K"], [[256, 0, 128], [0, 256, 128], [0, 0, 1]])
    assert r["joint_hypotheses"].shape == (8, 21, 3) and r["joints"].shape == (21, 3) and r["cam_t"].shape == (3,)
    np.testing.assert_allclose(r["joints"], r["joint_hypotheses"].mean(0), atol=1e-6)
    uv = project(r["joints"] + r["cam_t"], r["K"])
    assert np.linalg.norm(uv - r["keypoints2d"], axis=1).mean() < 10.0
    assert r["trajectory_joints_xt"].shape == (4, 8, 21, 3)
    assert r["trajectory_joints_x0"].shape == (3, 8, 21, 3)
    assert "error" not in capsys.readouterr().err
    # Same seed → same hypotheses.
    assert main(["infer", IMG, "--out", str(tmp_path / "again"), "-n", "8", "--steps", "3", "--seed", "1"]) == 0
    r2 = np.load(tmp_path / "again" / "anny_right_256" / "result.npz")
    np.testing.assert_array_equal(r["joint_hypotheses"], r2["joint_hypotheses"])


def test_failed_inputs_are_reported_and_others_processed(tmp_path, capsys):
    blank = tmp_path / "blank.png"
    import cv2
    cv2.imwrite(str(blank), np.full((96, 96, 3), 200, np.uint8))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    missing = tmp_path / "missing.jpg"
    out = tmp_path / "out"
    code = main(["infer", str(blank), IMG, str(broken), str(missing), "--out", str(out), "-n", "4", "--steps", "2"])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in e for e in lines)
    err = [e for e in lines if e.startswith("error:")]   # (notes from the mesh stage may precede)
    assert len(err) == 3, lines
    assert err[0].startswith(f"error: {blank}: ") and "no hand" in err[0]
    assert err[1].startswith(f"error: {broken}: ")
    assert err[2].startswith(f"error: {missing}: ") and "not found" in err[2]
    assert not any("Traceback" in e for e in err)
    assert (out / "anny_right_256" / "result.npz").exists()
    assert not (out / "blank").exists() or not (out / "blank" / "result.npz").exists()


@pytest.mark.parametrize("opts", [["--steps", "0"], ["--steps", "51"], ["-n", "0"]])
def test_bad_options_are_one_line_errors(tmp_path, capsys, opts):
    assert main(["infer", IMG, "--out", str(tmp_path), *opts]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_hand_selection_and_mirrored_input(tmp_path, capsys):
    import cv2
    left = tmp_path / "left.png"
    cv2.imwrite(str(left), cv2.imread(IMG)[:, ::-1])
    assert main(["infer", str(left), "--out", str(tmp_path / "o"), "-n", "4", "--steps", "2", "--hand", "left"]) == 0
    r = np.load(tmp_path / "o" / "left" / "result.npz")
    assert str(r["handedness"]) == "left"
    assert main(["infer", str(left), "--out", str(tmp_path / "o2"), "-n", "4", "--steps", "2", "--hand", "right"]) == 2
    assert "no right hand" in capsys.readouterr().err
