"""`pose-viewer mesh` and the top-level CLI, run as a user would (subprocess, no display)."""
import os
import subprocess
import sys

import numpy as np
import pytest


def run_cli(*args, env_extra=None):
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "viewer.launch", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_help_and_version_without_display():
    r = run_cli("--help")
    assert r.returncode == 0 and "pose-viewer" in r.stdout and "mesh" in r.stdout
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("pose-viewer ")
    r = run_cli("mesh", "--help")
    assert r.returncode == 0 and "--out" in r.stdout


@pytest.mark.parametrize("fmt", ["obj", "ply", "glb"])
def test_mesh_command_writes_a_valid_mesh(tmp_path, pose_npz, fmt):
    import trimesh

    out = tmp_path / f"hand.{fmt}"
    r = run_cli("mesh", pose_npz, "--out", out)
    assert r.returncode == 0, r.stderr
    mesh = trimesh.load(out, force="mesh", process=False)
    assert len(mesh.vertices) == 1609 and len(mesh.faces) > 3000
    extent = np.ptp(np.asarray(mesh.vertices), axis=0).max()
    assert 0.08 < extent < 0.3  # a hand, in metres


def test_left_hand_pose_file_is_mirrored(tmp_path, pose_npz):
    import trimesh

    right, left = tmp_path / "r.obj", tmp_path / "l.obj"
    data = dict(np.load(pose_npz))
    np.savez(tmp_path / "left.npz", side="left", **data)
    assert run_cli("mesh", pose_npz, "--out", right).returncode == 0
    assert run_cli("mesh", tmp_path / "left.npz", "--out", left).returncode == 0
    vr = trimesh.load(right, process=False).vertices
    vl = trimesh.load(left, process=False).vertices
    assert np.allclose(vl, vr * np.array([-1, 1, 1]), atol=1e-5)


@pytest.mark.parametrize("content", ["nan", "shape", "pickle", "empty", "missing"])
def test_bad_pose_files_give_one_error_line(tmp_path, content):
    p = tmp_path / "bad.npz"
    if content == "nan":
        np.savez(p, global_orient=np.zeros(3), pose=np.full(45, np.nan))
    elif content == "shape":
        np.savez(p, global_orient=np.zeros(3), pose=np.zeros(7))
    elif content == "pickle":
        import pickle

        p.write_bytes(pickle.dumps({"pose": [0.0] * 45}))
    elif content == "empty":
        p.write_bytes(b"")
    out = tmp_path / "x.obj"
    r = run_cli("mesh", p, "--out", out)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {p}: "), r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_debug_flag_shows_the_traceback(tmp_path):
    p = tmp_path / "bad.npz"
    np.savez(p, global_orient=np.zeros(3), pose=np.full(45, np.nan))
    r = run_cli("mesh", p, "--out", tmp_path / "x.obj", "--debug")
    assert r.returncode == 2 and "Traceback" in r.stderr


def test_mano_pose_without_mano_dir_says_what_is_missing(tmp_path):
    p = tmp_path / "mano.npz"
    np.savez(p, model="mano", global_orient=np.zeros(3), pose=np.zeros(45))
    r = run_cli("mesh", p, "--out", tmp_path / "x.obj")
    assert r.returncode == 2 and "MANO_RIGHT.pkl" in r.stderr


def test_mano_pose_with_a_mano_file(tmp_path):
    import trimesh

    from tests.mano_fixture import write_fake_mano

    write_fake_mano(tmp_path / "MANO_RIGHT.pkl")
    p = tmp_path / "mano.npz"
    np.savez(p, model="mano", global_orient=np.zeros(3), pose=np.zeros(45))
    r = run_cli("mesh", p, "--out", tmp_path / "m.ply", "--mano-dir", tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(trimesh.load(tmp_path / "m.ply", process=False).vertices) == 778


@pytest.mark.parametrize("folder", ["missing", "empty", "not_mano", "evil"])
def test_bad_mano_folders_give_one_error_line(tmp_path, folder):
    import pickle

    p = tmp_path / "mano.npz"
    np.savez(p, model="mano", global_orient=np.zeros(3), pose=np.zeros(45))
    d = tmp_path / "mano_dir"
    marker = tmp_path / "payload-ran"
    if folder != "missing":
        d.mkdir()
    if folder == "not_mano":
        (d / "MANO_RIGHT.pkl").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    if folder == "evil":
        (d / "MANO_RIGHT.pkl").write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    r = run_cli("mesh", p, "--out", tmp_path / "x.obj", "--mano-dir", d)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {p}: ") and "MANO" in lines[0], r.stderr
    assert not marker.exists()
