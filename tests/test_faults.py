"""Fault injection: read-only and missing folders, a full disk, corrupt settings, killed engine processes,
closing while things start. Every file the app and the CLI write goes through core/io/atomic.py; these
tests drive it (and the window, under Xvfb) into the failures a hostile user or a bad day produces.

A full disk is simulated without root in two ways: the raw write of core/io/atomic.py is patched to raise
ENOSPC after N bytes (in-process), and RLIMIT_FSIZE makes the kernel refuse a real write (EFBIG) in a
subprocess. A read-only folder is a 0o555 folder for a normal user; as root (who may write there anyway)
a read-only tmpfs is mounted when permitted, else those cases are skipped.
"""
from __future__ import annotations

import errno
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

from core.errors import OutputError

ROOT = pathlib.Path(__file__).resolve().parent.parent


# -- fault fixtures ----------------------------------------------------------------------------------------
@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody may create files in (EACCES for a user, EROFS for root on a read-only mount)."""
    d = tmp_path / "read-only"
    d.mkdir()
    (d / "existing.txt").write_text("keep me")
    os.chmod(d, 0o555)
    mounted = False
    if os.access(d, os.W_OK) and os.geteuid() == 0:   # root ignores the mode: use a read-only mount
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(d)], capture_output=True)
        if r.returncode != 0:
            os.chmod(d, 0o755)
            pytest.skip("running as root without permission to mount: cannot make a read-only folder")
        mounted = True
    yield d
    if mounted:
        subprocess.run(["umount", str(d)], check=False)
    os.chmod(d, 0o755)


@pytest.fixture
def missing_dir(tmp_path):
    return tmp_path / "no-such-folder" / "deeper"


class FullDisk:
    """Patch core.io.atomic's raw write: `after` bytes go through, then every write raises ENOSPC."""

    def __init__(self, after: int = 1000) -> None:
        import core.io.atomic as atomic

        self.atomic, self.after, self.written, self.hits = atomic, after, 0, 0
        self.real = atomic._os_write

    def __call__(self, fd, data):
        room = self.after - self.written
        if room <= 0:
            self.hits += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = self.real(fd, bytes(data[:room]))
        self.written += n
        return n


@pytest.fixture
def full_disk(monkeypatch):
    import core.io.atomic as atomic

    disk = FullDisk()
    monkeypatch.setattr(atomic, "_os_write", disk)
    return disk


def leftovers(folder: pathlib.Path) -> list[str]:
    """Files in `folder` other than the ones a fixture put there (temporary files included)."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name != "existing.txt")


def fsize_limited(limit: int):
    """preexec_fn: the child may write no file larger than `limit` bytes (EFBIG, like a full disk)."""
    def apply() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def run_cli(*args: str, preexec=None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "viewer.launch", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout, preexec_fn=preexec)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# -- 5. file modes and the guarded write itself (no Qt) -------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_exported_files_get_the_umask_mode_not_600(tmp_path, umask):
    """Meshes, npz results and pose files are created as `open(path, 'w')` would create them."""
    from core.io.export import save_mesh, save_npz
    from core.io.poses import save_pose_npz

    old = os.umask(umask)
    try:
        save_mesh(tmp_path / "hand.obj", np.zeros((3, 3)), np.array([[0, 1, 2]]))
        save_npz(tmp_path / "result.npz", a=np.arange(3))
        save_pose_npz(tmp_path / "pose.npz", np.zeros(3), np.zeros(45))
    finally:
        os.umask(old)
    for name in ("hand.obj", "result.npz", "pose.npz"):
        assert oct((tmp_path / name).stat().st_mode & 0o777) == oct(0o666 & ~umask), name


def test_replacing_a_file_keeps_its_mode(tmp_path):
    from core.io.atomic import write_bytes

    target = tmp_path / "shared.obj"
    target.write_text("old")
    os.chmod(target, 0o664)
    write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o664


def _writers():
    from core.io import atomic
    from core.io.export import save_mesh, save_npz

    png = _tiny_png()
    return {
        "mesh": lambda p: save_mesh(p.with_suffix(".obj"), np.random.rand(500, 3), np.zeros((200, 3), int)),
        "npz": lambda p: save_npz(p.with_suffix(".npz"), a=np.random.rand(2000)),
        "png-bytes": lambda p: atomic.write_png(p.with_suffix(".png"), png),
        "via-path": lambda p: atomic.write_via_path(p.with_suffix(".bin"),
                                                    lambda tmp: tmp.write_bytes(os.urandom(5000))),
    }


def _tiny_png() -> bytes:
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    raw = b"".join(b"\0" + os.urandom(3 * 64) for _ in range(64))   # 64x64 noise: ~12 KB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", (64).to_bytes(4, "big") * 2 + b"\x08\x02\0\0\0")
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("kind,fault", [
    (k, f) for f in ("read-only", "full-disk") for k in ("mesh", "npz", "png-bytes", "via-path")
    if (k, f) != ("via-path", "full-disk")])   # a library's own writes: test_a_library_writer_hitting_...
def test_a_failed_write_is_one_clear_error_and_leaves_nothing(request, tmp_path, kind, fault):
    folder = request.getfixturevalue("read_only_dir") if fault == "read-only" else tmp_path
    if fault == "full-disk":
        request.getfixturevalue("full_disk")
    with pytest.raises(OutputError) as info:
        _writers()[kind](folder / "out")
    message = str(info.value)
    assert "\n" not in message and message.startswith("cannot write ")
    assert ("disk full" in message) if fault == "full-disk" else ("read-only" in message or "permission" in message)
    assert leftovers(folder) == [], "a partial or temporary file was left behind"


def test_a_missing_folder_is_one_clear_error_for_user_chosen_paths(missing_dir):
    from core.io.atomic import write_bytes, write_via_path

    for write in (lambda p: write_bytes(p, b"x"), lambda p: write_via_path(p, lambda t: t.write_bytes(b"x"))):
        with pytest.raises(OutputError, match="the folder does not exist"):
            write(missing_dir / "shot.png")
    assert not missing_dir.parent.exists()


def test_a_full_disk_never_damages_the_file_being_replaced(tmp_path, full_disk):
    from core.io.export import save_npz

    target = tmp_path / "result.npz"
    save_npz(target, a=np.arange(3))   # 1000 bytes of room: a tiny file fits
    before = target.read_bytes()
    with pytest.raises(OutputError, match="disk full"):
        save_npz(target, a=np.random.rand(10_000))
    assert target.read_bytes() == before and leftovers(tmp_path) == ["result.npz"]


def test_a_library_writer_hitting_the_size_limit(tmp_path):
    """A library that writes a path itself (VTK, Qt) on a disk that fills up mid-file: the kernel's
    RLIMIT_FSIZE (EFBIG) in a child process stands in for a full disk; PNG verification catches a file
    the library cut off silently."""
    code = ("import os, pathlib, sys\n"
            "from core.io.atomic import write_via_path, png_file_is_complete\n"
            "from core.errors import OutputError\n"
            "def cut_off(tmp):\n"   # a writer that ignores its errors, as some image libraries do
            "    try:\n"
            "        tmp.write_bytes(b'\\x89PNG\\r\\n\\x1a\\n' + os.urandom(100_000))\n"
            "    except OSError:\n"
            "        pass\n"
            "try:\n"
            "    write_via_path(pathlib.Path(sys.argv[1]), cut_off, verify=png_file_is_complete)\n"
            "except OutputError as e:\n"
            "    print(e); sys.exit(2)\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "shot.png")], cwd=ROOT, text=True,
                       capture_output=True, preexec_fn=fsize_limited(8192), timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout.startswith("cannot write") and leftovers(tmp_path) == []


@pytest.mark.parametrize("fault", ["read-only", "full-disk"])
def test_cli_mesh_write_failure_exits_2_with_one_line(request, tmp_path, pose_npz, fault):
    folder = request.getfixturevalue("read_only_dir") if fault == "read-only" else tmp_path / "out"
    preexec = fsize_limited(20_000) if fault == "full-disk" else None   # the .obj is ~100 KB
    r = subprocess.run([sys.executable, "-m", "core.cli", "mesh", str(pose_npz), "--out", str(folder / "hand.obj")],
                       cwd=ROOT, text=True, capture_output=True, preexec_fn=preexec, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 2, r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and "cannot write" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert leftovers(folder) == []


# -- 3. settings that cannot stop the app (no Qt) --------------------------------------------------------------
@pytest.mark.parametrize("key,raw,expected", [
    ("engine/n", "abc", 50), ("engine/n", "1e9", 50), ("engine/n", "-3", 50), ("engine/n", "nan", 50),
    ("engine/n", [1, 2], 50), ("engine/steps", "99", 10), ("engine/seed", "1.5", 0),
    ("engine/mode", "fast", "cloud"), ("engine/device", 3, "auto"), ("recent", {"a": 1}, []),
    ("geometry", "not bytes", b""), ("engine/all_hands", "yes", False), ("engine/all_hands", 2, False),
])
def test_a_bad_stored_setting_falls_back_to_its_default_with_one_warning(caplog, key, raw, expected):
    from viewer.settings_schema import read_setting

    with caplog.at_level("WARNING", logger="pose-viewer"):
        assert read_setting(key, raw) == expected
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and key in warnings[0].getMessage()


@pytest.mark.parametrize("key,raw,expected", [
    ("engine/n", "7", 7), ("engine/n", 7, 7), ("engine/steps", "1e1", 10), ("engine/mode", "paper", "paper"),
    ("recent", "/a.png", ["/a.png"]), ("recent", [f"/{i}" for i in range(30)], [f"/{i}" for i in range(10)]),
    ("engine/n", None, 50), ("engine/all_hands", "true", True), ("engine/all_hands", "false", False),
    ("engine/all_hands", True, True),
])
def test_good_or_missing_settings_are_read_silently(caplog, key, raw, expected):
    from viewer.settings_schema import read_setting

    with caplog.at_level("WARNING", logger="pose-viewer"):
        assert read_setting(key, raw) == expected
    assert not caplog.records


def test_the_schema_covers_every_setting_panel_widget():
    """One source of truth: every value the settings panel stores has a schema entry whose range is the
    widget's range (read from viewer/panels.py without starting Qt)."""
    import re

    from viewer.settings_schema import SCHEMA

    text = (ROOT / "viewer" / "panels.py").read_text()
    for name, lo, hi in re.findall(r"self\.(\w+) = QtWidgets\.QSpinBox\(minimum=([\d*\-+ ]+), maximum=([\d*\-+ ]+),",
                                   text.split("class DisplayPanel")[0]):
        s = SCHEMA[f"engine/{name}"]
        assert (s.minimum, s.maximum) == (eval(lo), eval(hi)), name   # noqa: S307 - literal ints from our file


def test_viewer_settings_schema_imports_no_qt():
    code = "import sys, viewer.settings_schema; assert 'PySide6' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# -- 6. and close: engine processes that die, and ending them quickly (Qt, no window) ----------------------------
def _ready_runner(qtbot, serve: str):
    from viewer.process_worker import ProcessRunner

    runner = ProcessRunner(serve=serve, label={"serve_prior": "DPoser"}.get(serve, "engine"))
    runner.prewarm()
    qtbot.waitUntil(lambda: runner.child_ready, timeout=180_000)
    return runner


@pytest.mark.parametrize("serve", ["serve_prior", "serve_cascade"])
def test_an_idle_child_killed_is_reported_once_at_once_and_restarted(qtbot, serve):
    import signal

    pytest.importorskip("pytestqt")
    runner = _ready_runner(qtbot, serve)
    try:
        reports, failures = [], []
        runner.crashed.connect(reports.append)
        runner.failed.connect(lambda m, tb: failures.append(m))
        old = runner.pid
        t0 = time.perf_counter()
        os.kill(old, signal.SIGKILL)
        qtbot.waitUntil(lambda: bool(reports), timeout=5_000)
        noticed = time.perf_counter() - t0
        assert noticed < 2.0, f"noticed {noticed:.2f} s after the kill"
        assert "stopped unexpectedly" in reports[0] and "signal 9" in reports[0]
        qtbot.waitUntil(lambda: runner.pid not in (None, old), timeout=5_000)   # restarted by itself
        qtbot.waitUntil(lambda: runner.child_ready, timeout=180_000)
        qtbot.wait(200)
        assert len(reports) == 1 and not failures, (reports, failures)
    finally:
        runner.shutdown()
    assert runner.pid is None


@pytest.mark.parametrize("when", ["starting", "ready"])
def test_shutdown_ends_both_children_within_2_s(qtbot, when):
    """Closing the window while the children import torch / load models, or while idle: both end in ≤ 2 s
    together (asked, then terminated, then killed)."""
    import multiprocessing

    from viewer.process_worker import ProcessRunner, shutdown_all

    runners = [ProcessRunner(serve="serve_cascade", label="engine"), ProcessRunner(serve="serve_prior")]
    for r in runners:
        r.prewarm()
    if when == "ready":
        qtbot.waitUntil(lambda: all(r.child_ready for r in runners), timeout=240_000)
    else:
        qtbot.wait(300)
    procs = [r.process for r in runners]
    t0 = time.perf_counter()
    shutdown_all(runners)
    took = time.perf_counter() - t0
    assert not any(p.is_alive() for p in procs) and all(r.pid is None for r in runners)
    assert took <= 2.0, f"shutdown took {took:.2f} s"
    assert not multiprocessing.active_children()


def test_shutdown_mid_run_is_quick_and_reports_nothing(qtbot, pose_npz):
    from core.io.poses import load_pose_file
    from viewer.process_worker import shutdown_all

    runner = _ready_runner(qtbot, "serve_prior")
    messages = []
    runner.crashed.connect(messages.append)
    runner.failed.connect(lambda m, tb: messages.append(m))
    pf = load_pose_file(pose_npz)
    from viewer.state import PoseSource

    source = PoseSource("p", np.zeros((21, 3), np.float32), pf.pose, pf.global_orient, None)
    hidden = np.zeros(21, bool)
    hidden[[4, 8, 12]] = True
    with qtbot.waitSignal(runner.progress, timeout=60_000):
        runner.start((source, hidden, {"iters": 50_000, "n": 10}))
    t0 = time.perf_counter()
    shutdown_all([runner])
    assert time.perf_counter() - t0 <= 2.0
    qtbot.wait(300)
    assert not messages and runner.pid is None


def test_one_engine_process_serves_the_cascade_and_dposer_lanes_side_by_side(qtbot, pose_npz):
    """Issue 27 (footprint): DPoser is a second lane of the engine process (one torch runtime): one child
    for both runners; an image run finishes while a DPoser run is in flight (the lanes do not queue
    behind each other); a kill mid-run fails that lane's run once and nothing else; an idle kill is
    reported once for the process; both lanes come back by themselves; shutdown ends it."""
    import multiprocessing
    import signal

    from core.io.poses import load_pose_file
    from core.paths import SAMPLE_IMAGE
    from viewer.process_worker import ProcessRunner, shutdown_all
    from viewer.state import PoseSource

    engine = ProcessRunner(serve="serve_cascade", label="engine")
    prior = ProcessRunner(serve="serve_prior", host=engine)
    reports, failures = [], {"engine": [], "DPoser": []}
    for r in (engine, prior):
        r.crashed.connect(reports.append)
        r.failed.connect(lambda m, tb, r=r: failures[r.label].append(m))
    pf = load_pose_file(pose_npz)
    source = PoseSource("p", np.zeros((21, 3), np.float32), pf.pose, pf.global_orient, None)
    hidden = np.zeros(21, bool)
    hidden[[4, 8, 12]] = True
    endless = (source, hidden, {"iters": 1_000_000, "n": 4})
    try:
        prior.prewarm()
        qtbot.waitUntil(lambda: engine.child_ready and prior.child_ready, timeout=240_000)
        assert engine.pid == prior.pid and len(multiprocessing.active_children()) == 1
        # Each lane keeps its own torch thread count: DPoser's 1 must not leak into the cascade's default.
        default = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        assert (prior.info["threads"], engine.info["threads"]) == (1, int(default))
        with qtbot.waitSignal(prior.progress, timeout=60_000):
            prior.start(endless)
        with qtbot.waitSignal(engine.finished, timeout=120_000) as got:   # would never come if it queued
            engine.start((str(SAMPLE_IMAGE), None, None, 0, {"n": 5, "steps": 2}))
        assert got.args[0].result.joint_hypotheses.shape[0] == 5 and prior.busy
        old = prior.pid
        with qtbot.waitSignal(prior.failed, timeout=10_000):   # killed mid-run (DPoser lane)
            os.kill(old, signal.SIGKILL)
        qtbot.wait(300)
        assert len(failures["DPoser"]) == 1 and not failures["engine"] and not reports
        assert "stopped unexpectedly" in failures["DPoser"][0]
        qtbot.waitUntil(lambda: engine.pid not in (None, old) and engine.pid == prior.pid, timeout=5_000)
        qtbot.waitUntil(lambda: engine.child_ready and prior.child_ready, timeout=240_000)
        old = engine.pid
        engine._last_respawn_t = -1e9   # (a second death within 10 s is not restarted: it might loop)
        os.kill(old, signal.SIGKILL)   # idle: one report for the process
        qtbot.waitUntil(lambda: bool(reports), timeout=5_000)
        qtbot.waitUntil(lambda: engine.pid not in (None, old) and engine.pid == prior.pid, timeout=5_000)
        qtbot.waitUntil(lambda: engine.child_ready and prior.child_ready, timeout=240_000)
        qtbot.wait(200)
        assert len(reports) == 1 and "signal 9" in reports[0] and len(failures["DPoser"]) == 1, (reports, failures)
        # A death not yet noticed when a run starts (the reader's signal still queued): the other lane's run
        # in flight fails once, the new run goes to a fresh process.
        with qtbot.waitSignal(prior.progress, timeout=60_000):
            prior.start(endless)
        proc, engine._last_respawn_t = engine.process, -1e9
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(5)   # dead; no Qt event handled since
        with qtbot.waitSignal(engine.finished, timeout=240_000):
            engine.start((str(SAMPLE_IMAGE), None, None, 0, {"n": 5, "steps": 2}))
        assert not prior.busy and len(failures["DPoser"]) == 2 and not failures["engine"], failures
        assert engine.pid not in (None, proc.pid) and len(reports) == 1
        again = prior.call(("source_from_pose", "p", pf.pose, pf.global_orient, None))
        assert again.vertices.shape == (1609, 3)
    finally:
        t0 = time.perf_counter()
        shutdown_all([prior])   # one lane named: the process and both lanes end
        took = time.perf_counter() - t0
    assert engine.pid is None and prior.pid is None and not multiprocessing.active_children()
    assert took <= 2.0, f"shutdown took {took:.2f} s"


# -- 7. the window's first hand without torch ------------------------------------------------------------------
def test_the_shipped_neutral_hand_matches_the_hand_model():
    """resources/mesh/anny_neutral.npz (the window's first hand, read without torch) is what the Anny
    hand model gives now; a drift names the script that rebuilds it."""
    from core.neutral_hand import REBUILD, load_neutral_hand, neutral_arrays

    shipped, fresh = load_neutral_hand(), neutral_arrays()
    assert np.array_equal(shipped.faces, fresh["faces"]), f"faces changed: {REBUILD}"
    for key in ("vertices", "joints", "global_orient"):
        assert np.allclose(getattr(shipped, key), fresh[key], atol=1e-5), f"{key} changed: {REBUILD}"


def test_a_damaged_neutral_hand_names_the_rebuild_command(tmp_path):
    from core.errors import WeightsError
    from core.neutral_hand import load_neutral_hand

    bad = tmp_path / "n.npz"
    np.savez(bad, vertices=np.zeros((5, 3)), joints=np.zeros((21, 3)), faces=np.array([[0, 1, 9]]),
             global_orient=np.zeros(3))
    for path in (bad, tmp_path / "missing.npz"):
        with pytest.raises(WeightsError, match="make_neutral_hand.py"):
            load_neutral_hand(path)


def test_the_dposer_process_serves_pose_sources_and_reports_its_device(qtbot, pose_npz):
    """What the window no longer computes itself (no torch, no hand model in its process): the mesh and
    joints of a pose file and a random pose come from the DPoser process; the engine process names
    its device."""
    from core.io.poses import load_pose_file
    from viewer.state import PoseSource

    prior, engine = _ready_runner(qtbot, "serve_prior"), _ready_runner(qtbot, "serve_cascade")
    try:
        assert "CPU" in engine.info.get("device", "") or "CUDA" in engine.info.get("device", "")
        pf = load_pose_file(pose_npz)
        with qtbot.waitSignal(prior.finished, timeout=60_000) as got:
            prior.start(("source_from_pose", "p", pf.pose, pf.global_orient, None))
        source = got.args[0]
        assert isinstance(source, PoseSource) and source.joints.shape == (21, 3)
        assert source.vertices.shape == (1609, 3) and np.isfinite(source.vertices).all()
        # The synchronous form the window uses (a pose's mesh in ~10 ms, no signals, no event loop).
        finished = []
        prior.finished.connect(finished.append)
        t0 = time.perf_counter()
        again = prior.call(("source_from_pose", "p", pf.pose, pf.global_orient, None))
        took = time.perf_counter() - t0
        assert np.allclose(again.vertices, source.vertices) and not prior.busy
        random = prior.call(("random_source", 3))
        assert random.pose.shape == (45,) and not np.allclose(random.joints, source.joints)
        from core.errors import PoseViewerError

        with pytest.raises(PoseViewerError, match="unknown request"):
            prior.call(("no_such_request",))
        qtbot.wait(100)
        assert not finished, "a call's result must not also arrive as a run's result"
        print(f"call: {took * 1000:.1f} ms")
    finally:
        from viewer.process_worker import shutdown_all

        shutdown_all([prior, engine])



def test_cli_infer_into_a_read_only_folder_exits_2_with_one_line(read_only_dir):
    from core.paths import SAMPLE_IMAGE

    r = subprocess.run([sys.executable, "-m", "core.cli", "infer", str(SAMPLE_IMAGE), "--out", str(read_only_dir / "out"),
                        "-n", "2", "--steps", "1"], cwd=ROOT, text=True, capture_output=True, timeout=600,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    lines = error_lines(r.stderr)
    assert r.returncode == 2 and len(lines) == 1 and "cannot write" in lines[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr and leftovers(read_only_dir) == []
