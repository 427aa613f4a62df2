"""The bad-input corpus through the CLI (one process, many inputs) and the window.

Each bad input gives one `error: <path>: <reason>` line and exit status 2 while the other inputs are
still processed; in the GUI it gives a message and the previous result stays."""
import os
import subprocess
import sys

import pytest

from core.paths import MODELS_DIR
from tests.corpus import HAND_IMAGE, image_corpus, pose_corpus


def run_cli(*args):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "viewer.launch", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=900)


def _check_error_lines(stderr: str, corpus: dict) -> set[str]:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error")]
    assert all(ln.startswith("error: ") for ln in lines), stderr
    assert "Traceback" not in stderr
    noise = [ln for ln in stderr.splitlines() if ln.startswith(("W0000", "I0000", "INFO:", "WARNING:", "Warp"))]
    assert not noise, f"native library messages on stderr: {noise[:3]}"
    failed = {name for name, (path, _) in corpus.items() if any(ln.startswith(f"error: {path}: ") for ln in lines)}
    assert len(lines) == len(failed), "exactly one line per failed input"
    for name, (_, must_fail) in corpus.items():
        if must_fail is True:
            assert name in failed, f"{name} should have failed"
        if must_fail is False:
            assert name not in failed, f"{name} should have worked"
    return failed


@pytest.fixture
def stage1_weights():
    if not (MODELS_DIR / "joint_diffusion.safetensors").exists():
        pytest.fail("stage-1 weights are missing")


def test_infer_on_the_image_corpus(tmp_path, stage1_weights):
    corpus = image_corpus(tmp_path / "in")
    out = tmp_path / "out"
    r = run_cli("infer", HAND_IMAGE, *[p for p, _ in corpus.values()], "--out", out, "-n", "4", "--steps", "2",
                "--stage", "1")
    assert r.returncode == 2
    failed = _check_error_lines(r.stderr, corpus)
    assert (out / HAND_IMAGE.stem / "result.npz").exists()
    for name, (path, _) in corpus.items():
        assert (out / path.stem / "result.npz").exists() == (name not in failed)
    # nothing was written outside the output folder, and no half-written files are left
    assert not list(out.rglob("*.part"))


def test_mesh_on_the_pose_corpus(tmp_path):
    marker = tmp_path / "pickle-ran"
    corpus = pose_corpus(tmp_path / "poses", marker)
    for name, (path, _) in corpus.items():
        r = run_cli("mesh", path, "--out", tmp_path / f"{name}.obj")
        assert r.returncode == 2, name
        _check_error_lines(r.stderr, {name: (path, True)})
    assert not marker.exists(), "a pickle was executed"


def test_complete_on_the_pose_corpus(tmp_path, pose_npz):
    if not (MODELS_DIR / "dposer_hand.safetensors").exists():
        pytest.fail("DPoser weights are missing")
    marker = tmp_path / "pickle-ran"
    corpus = pose_corpus(tmp_path / "poses", marker)
    out = tmp_path / "out"
    r = run_cli("complete", pose_npz, *[p for p, _ in corpus.values()], "--out", out, "--mask", "4,8",
                "-n", "2", "--iters", "5")
    assert r.returncode == 2
    _check_error_lines(r.stderr, corpus)
    assert (out / f"{pose_npz.stem}.npz").exists()
    assert not marker.exists(), "a pickle was executed"


def test_window_survives_the_image_corpus(window, qtbot, tmp_path, stage1_weights):
    corpus = image_corpus(tmp_path / "in")
    window.settings_panel.n.setValue(4)
    window.settings_panel.steps.setValue(2)

    def open_and_wait(path):
        with qtbot.waitSignal(window.runs.busy_changed, timeout=120_000, check_params_cb=lambda b: not b):
            window.open_path(str(path))

    open_and_wait(HAND_IMAGE)
    assert window.last_error is None
    good = window.model.result_state.result
    for name, (path, must_fail) in corpus.items():
        before = window.model.result_state.result
        open_and_wait(path)
        if window.last_error is None:
            assert must_fail is not True, f"{name} should have failed"
            assert window.model.result_state.result is not before
        else:
            assert must_fail is not False, f"{name}: {window.last_error}"
            assert window.model.result_state.result is before, f"{name} changed the result"
            assert path.name in window.statusBar().currentMessage()
    open_and_wait(HAND_IMAGE)   # still usable
    assert window.last_error is None and window.model.result_state.result is not good


def test_window_survives_the_pose_corpus(window, tmp_path, pose_npz):
    marker = tmp_path / "pickle-ran"
    corpus = pose_corpus(tmp_path / "poses", marker)
    assert window.open_path(str(pose_npz))
    shown = window.view3d.scene.mesh.points.copy()
    source = window.model.completion.source
    for name, (path, _) in corpus.items():
        assert not window.open_path(str(path)), name
        assert path.name in window.last_error and path.name in window.statusBar().currentMessage()
        assert window.model.completion.source is source, f"{name} replaced the pose"
        assert (window.view3d.scene.mesh.points == shown).all()
    assert not marker.exists(), "a pickle was executed"
    assert window.open_path(str(pose_npz))   # still usable
