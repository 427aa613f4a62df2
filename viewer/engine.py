"""The viewer's handle on the engine: builds the image pipeline once (in the engine process) and runs it.

Uses the full cascade when its weights are available, else stage 1 alone (joint hypotheses only):
`core.pipeline.ImagePipeline.load` decides and says why. All computation happens in `core`; this only
chooses, calls and reports progress.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.pipeline import HandResult


@dataclass
class Estimate:
    """What one image run returns to the GUI thread."""

    path: str
    image: np.ndarray
    detections: list[Any]
    chosen: int
    result: HandResult
    reprojection_px: np.ndarray
    seconds: float
    engine_kind: str = ""          # 'cascade (joints + meshes)' or 'stage 1 (joints only)'
    engine_note: str = ""          # why the mesh stage is unavailable, if it is
    indices: list[int] | None = None       # the detections estimated by this run (issue 26: all hands)
    results: list[HandResult] | None = None          # their results, in `indices` order (`result` is the chosen's)
    reprojections: list[np.ndarray] | None = None    # their per-hypothesis reprojection errors


#: At most this many hands of a photo are estimated in one run (the others when the user picks them).
MAX_HANDS = 8


class Engine:
    """Lazily loaded image pipeline (detector + stage 1 + stage 2), shared by all runs (guarded by a lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pipeline: Any = None
        self._device: str | None = None

    @property
    def kind(self) -> str:
        return self._pipeline.kind if self._pipeline is not None else "not loaded"

    @property
    def note(self) -> str:
        return self._pipeline.note if self._pipeline is not None else ""

    def pipeline(self, device: str = "auto"):
        """The `core.pipeline.ImagePipeline` on `device` (loaded on first use or when the device changes)."""
        with self._lock:
            if self._pipeline is None or device != self._device:
                from core.device import pick_device
                from core.pipeline import ImagePipeline

                self._pipeline = ImagePipeline.load(pick_device(device))
                self._device = device
            return self._pipeline

    def info(self) -> dict:
        """What the window shows about this process (sent once with 'ready'): the device label."""
        from core.device import describe_device, pick_device

        return {"device": describe_device(pick_device(self._device or "auto"))}

    def detect(self, image: np.ndarray) -> list[Any]:
        """Every hand in the image, largest first (raises NoHandError when there is none)."""
        return self.pipeline(self._device or "auto").detect(image)

    def run(self, path: str, image: np.ndarray | None, detections: list[Any] | None, chosen: int,
            settings: dict, progress, cancel, early=None) -> Estimate:
        """Load (if needed), detect (if needed) and estimate the photo's hands in one batched call.

        Which hands: a new photo (`detections` None) → every hand found (`settings['detector']`, default
        'auto': the palm detector, and the crop search of `core.hand_search` when it finds none — or for the
        hands it missed too when `settings['all_hands']`, which costs ~1-4 s per photo on 2 CPU cores, so
        the window does not wait for it by default; a box drawn around a missed hand finds it), at most
        MAX_HANDS; `settings['hands']` → those detections; `settings['box']` (x0, y0, x1, y1 px, a box the
        user drew) → the hand in that box (landmarks of the best of 4 rotations), appended to the
        detections; else the chosen hand. The chosen hand's side is forced when `settings['side']` is
        'left' / 'right'; a hand decided in an earlier run keeps that decision (it travels with the
        detection, core.side).

        With meshes, the mesh trajectory (x̂0 of every stage-2 step, decoded: ~0.35 s for 50 × 10 meshes
        on 2 CPU cores, per hand) is only needed by the denoising slider, so `early(estimate)`, when
        given, receives the results without it first; the returned estimate has it."""
        import time

        from core.hypotheses import reprojection_errors
        from core.io.images import load_image

        t0 = time.perf_counter()
        progress(0, 3, "loading")
        if image is None:
            image = load_image(path)
        pipe = self.pipeline(settings.get("device", "auto"))
        if settings.get("box") is not None:
            from core.hand_search import default_searcher

            progress(1, 3, "finding the hand in the box")
            detections = list(detections or []) + [default_searcher().landmarks_in_box(image, settings["box"])]
            chosen = len(detections) - 1
            indices = [chosen]
        elif detections is None:
            progress(1, 3, "detecting")
            detections = pipe.detect(image, settings.get("detector", "auto"), want_all=settings.get("all_hands", False))
            chosen = 0
            indices = list(range(min(len(detections), MAX_HANDS)))
        else:
            indices = [i for i in settings.get("hands") or [chosen] if 0 <= i < len(detections)] or [chosen]
        if chosen not in indices:
            chosen = indices[0]
        side = settings.get("side", "auto")
        if side != "auto":      # the user flipped the chosen hand: forced; the others keep their decision
            pipe.decide_sides(image, [detections[chosen]], side)
        stage = ["joints"]
        results = pipe.estimate(image, [detections[i] for i in indices], n=settings.get("n", 50),
                                steps=settings.get("steps", 10), seed=settings.get("seed", 0), side="auto",
                                cancel=cancel, progress=lambda done, total: progress(done, total, stage[0]),
                                on_stage=lambda name: stage.__setitem__(0, name))
        errs = [reprojection_errors(r.joint_hypotheses, r.cam_t, r.keypoints2d, r.K) for r in results]
        k = indices.index(chosen)
        estimate = Estimate(path, image, detections, chosen, results[k], errs[k], time.perf_counter() - t0, pipe.kind,
                            pipe.note, indices, results, errs)
        if results[k].trajectory_latents_x0 is None:
            return estimate
        if early is not None:
            early(estimate)
        for r in [results[k]] + results[:k] + results[k + 1:]:     # the chosen hand's first
            pipe.decode_trajectory(r, cancel)
        estimate.seconds = time.perf_counter() - t0
        return estimate


class PriorEngine:
    """DPoser completion for the viewer: loads the prior once and runs the test-time optimisation."""

    def __init__(self, hand) -> None:
        self.hand = hand
        self._prior = None
        self._lock = threading.Lock()

    def prior(self):
        with self._lock:
            if self._prior is None:
                from core.prior import load_prior

                self._prior = load_prior()
            return self._prior

    def source_from_pose(self, label: str, pose: np.ndarray, global_orient: np.ndarray,
                         shape: np.ndarray | None = None, mirror: bool = False):
        """A completion source from pose parameters (joints and mesh from the hand model)."""
        import torch

        from viewer.state import PoseSource

        with torch.inference_mode():
            out = self.hand(torch.as_tensor(global_orient, dtype=torch.float32)[None],
                            torch.as_tensor(pose, dtype=torch.float32)[None],
                            None if shape is None else torch.as_tensor(shape, dtype=torch.float32)[None])
        joints, verts = out.joints[0].numpy(), out.vertices[0].numpy()
        return PoseSource(label, joints, np.asarray(pose, np.float32), np.asarray(global_orient, np.float32),
                          None if shape is None else np.asarray(shape, np.float32), verts)

    def random_source(self, seed: int):
        """A pose sampled from the prior, palm to the camera."""
        from core.hand.base import FACING_CAMERA_ORIENT

        pose = self.prior().sample_poses(1, seed=seed)[0]
        return self.source_from_pose(f"random pose (seed {seed})", pose, np.array(FACING_CAMERA_ORIENT))

    def handle(self, job: tuple, progress, cancel):
        """One request of the window (the window process has no torch and no hand model, issue 27):
        ('source_from_pose', label, pose, global_orient, shape) or ('random_source', seed) → PoseSource;
        else a completion (source, hidden, settings)."""
        if isinstance(job[0], str):
            if job[0] == "source_from_pose":
                return self.source_from_pose(*job[1:])
            if job[0] == "random_source":
                return self.random_source(*job[1:])
            if job[0] == "refine":   # ('refine', HandResult, settings): viewer/refine_job.py
                from viewer.refine_job import run_refine

                return run_refine(self, *job[1:], progress=progress, cancel=cancel)
            raise ValueError(f"unknown request {job[0]!r}")
        return self.complete(*job, progress, cancel)

    def complete(self, source, hidden: np.ndarray, settings: dict, progress, cancel):
        """S completions of the hidden joints; returns (TTOResult, vertices (S,V,3))."""
        import torch

        prior = self.prior()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)   # small ops: one thread is faster and leaves a core to the window
        try:
            return self._complete(prior, source, hidden, settings, progress, cancel)
        finally:
            torch.set_num_threads(threads)

    def _complete(self, prior, source, hidden, settings, progress, cancel):
        import torch

        from core.prior import DEFAULT_HYPOTHESES, Schedule, TTOConfig, complete_pose, fit_joints

        # Settings the dock leaves out take core.prior's defaults (the one definition of each).
        default_sched, default_cfg = Schedule(), TTOConfig()
        sched = Schedule(kind=settings.get("schedule", default_sched.kind),
                         t_max=settings.get("t_max", default_sched.t_max),
                         t_min=settings.get("t_min", default_sched.t_min))
        cfg = TTOConfig(prior=settings.get("prior", default_cfg.prior), schedule=sched,
                        iters=settings.get("iters", default_cfg.iters), seed=settings.get("seed", default_cfg.seed))
        n = settings.get("n", DEFAULT_HYPOTHESES)
        every = max(1, cfg.iters // 25)
        shape_t = None if source.shape is None else torch.as_tensor(source.shape)[None].expand(n, -1)

        if source.pose is not None:
            go = torch.as_tensor(source.global_orient, dtype=torch.float32)[None].expand(n, -1)

            def callback(it, total, t, pose):
                if (it + 1) % every == 0 or it + 1 == total:
                    with torch.inference_mode():
                        joints = self.hand.joints(go, torch.as_tensor(pose, dtype=torch.float32), shape_t).numpy()
                    progress(it + 1, total, "completing", (it + 1, joints))
                else:
                    progress(it + 1, total, "completing")

            result = complete_pose(prior, source.pose, hidden, n=n, cfg=cfg, hand=self.hand,
                                   global_orient=source.global_orient, shape=source.shape,
                                   callback=callback, cancel=cancel)
        else:
            def callback(it, total, t, pose):
                progress(it + 1, total, "fitting")

            result = fit_joints(prior, self.hand, source.joints, hidden, n=n, cfg=cfg, callback=callback,
                                cancel=cancel)
        return result, result.vertices(self.hand)


# -- The engine in a child process ---------------------------------------------------------------------
# The cascade and DPoser's test-time optimisation are Python loops of torch ops: on a thread of the GUI
# process they would hold the GIL and stall the window. `viewer.process_worker.ProcessRunner` runs them in
# a child process (spawn) instead: the window's one engine process runs `serve_lanes` below with a cascade
# lane and a DPoser lane (`serve_cascade` / `serve_prior` serve one lane alone). This module imports no Qt,
# so the child never loads it. Messages are tuples of plain data (numbers, strings, numpy arrays,
# dataclasses of numpy arrays), pickled only between our own processes.


def build_hand(spec: dict | None = None):
    """The hand model named by `spec`: {'kind': 'anny'} (default) or {'kind': 'mano', 'path': folder}."""
    from core.hand import load_hand_model

    spec = spec or {"kind": "anny"}
    return load_hand_model(spec.get("kind", "anny"), mano_dir=spec.get("path"))


WORKER_NICENESS = 10   # the engine process's scheduling priority, below the window's


def _prior_setup(hand_spec: dict | None) -> PriorEngine:
    engine = PriorEngine(build_hand(hand_spec))
    try:
        engine.prior()     # warm: the first completion should not pay for loading the weights
    except Exception:      # noqa: BLE001 - e.g. missing weights: reported again by each job
        pass
    # Warm the hand's skinning (Warp loads its kernels on first use): the first pose's mesh is then
    # quick, and in a shared process the kernels are loaded here, before another lane runs.
    try:
        engine.source_from_pose("warm-up", np.zeros(engine.hand.pose_dim, np.float32), np.zeros(3, np.float32))
    except Exception:      # noqa: BLE001 - a warm-up only: the real request reports its own error
        pass
    return engine


def _prior_job(engine, job, progress, cancelled):
    return engine.handle(job, progress, cancelled)


def _cascade_setup(spec: dict | None) -> Engine:
    engine = Engine()
    try:
        engine.pipeline("auto").warm()   # weights and the MediaPipe bundle
    except Exception:      # noqa: BLE001 - e.g. missing weights: reported again by each job
        pass
    return engine


def _cascade_job(engine, job, progress, cancelled):
    # The result goes out as a 'partial' as soon as the meshes are there; 'finished' follows with the
    # decoded mesh trajectory for the denoising slider.
    return engine.run(*job, progress, cancelled, early=lambda est: progress(1, 1, "decoding the trajectory", est))


#: serve name → (setup(spec), run_job(engine, job, progress, cancelled), torch threads of its lane). DPoser's
#: small ops run fastest on one thread and leave the other core to the window; the cascade takes the default.
LANES = {"serve_prior": (_prior_setup, _prior_job, 1), "serve_cascade": (_cascade_setup, _cascade_job, None)}


def serve_prior(conn, cancel_upto, hand_spec: dict | None) -> None:
    """DPoser child process: build the hand model and load the prior once, then run completion jobs
    ('job', run_id, source, hidden, settings). Protocol in `_serve_lane`."""
    serve_lanes([("serve_prior", conn, cancel_upto, hand_spec)])


def serve_cascade(conn, cancel_upto, spec: dict | None) -> None:
    """Image child process: load the detector and the cascade once, then run image jobs
    ('job', run_id, path, image, detections, chosen, settings) → `Estimate`. Protocol in `_serve_lane`."""
    serve_lanes([("serve_cascade", conn, cancel_upto, spec)])


def serve_lanes(lanes: list[tuple]) -> None:
    """One engine process serving one or several lanes [(serve name, conn, cancel_upto, spec), ...]
    (issue 27: the cascade and DPoser in one process share one torch runtime and one Warp). Lanes are
    set up in order (each sends 'ready' when its models are loaded) and each is served by its own thread,
    so a DPoser job never waits for an image run (torch's thread count is per thread). The process
    ends when any lane is told to stop or loses its window."""
    import os
    import sys

    try:
        # When the CPU is short, the window's frames go first; with a core to spare this changes nothing.
        os.nice(WORKER_NICENESS)
    except (AttributeError, OSError):   # not on this platform / not permitted
        pass
    import torch

    default_threads = torch.get_num_threads()   # before any lane changes torch's process-wide count
    ended = threading.Event()
    for name, conn, cancel_upto, spec in lanes:
        setup, run_job, threads = LANES[name]
        engine, startup_error = _set_up(lambda: setup(spec))
        threading.Thread(target=_serve_lane, daemon=True, name=name,
                         args=(conn, cancel_upto, engine, startup_error, run_job, threads or default_threads,
                               ended)).start()
    ended.wait()
    # Skip the interpreter's teardown (torch's takes about a second): nothing is left to flush or save.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def trim_heap() -> None:
    """Give the heap pages a finished job freed back to the system (glibc keeps them otherwise: the
    engine process's resident memory would stay at its peak). A few ms; nothing on other platforms."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _set_up(setup) -> tuple[Any, tuple[str, str] | None]:
    """(engine, None) or (None, (one-line error, traceback)) when `setup()` fails."""
    import traceback

    from core.errors import one_line

    try:
        return setup(), None
    except Exception as exc:   # noqa: BLE001 - reported to the user by each job
        return None, (one_line(exc), traceback.format_exc())


def _serve_lane(conn, cancel_upto, engine, startup_error, run_job, threads: int,
                ended: threading.Event) -> None:
    """One lane's loop (on its own thread of the engine process, running torch ops on `threads` threads):
    `run_job(engine, job, progress, cancelled)` per job, until 'stop' or the window goes away; then
    `ended` is set.

    Receives ('job', run_id, *job) or ('stop',) on `conn`; sends ('ready', error, info) (info: the
    engine's `info()` dict, e.g. the device label, or {}),
    ('progress', run_id, done, total, label), ('partial', run_id, payload), and exactly one of
    ('finished', run_id, result), ('failed', run_id, message, traceback) or ('cancelled', run_id) per
    job. A job is cancelled once `cancel_upto.value >= run_id`.
    """
    import pickle
    import traceback

    import torch

    from core.errors import Cancelled, one_line

    # Per thread: torch gives a thread, on its first use, the count last set by *any* thread (the other
    # lane's 1 would leak into the cascade: measured 1 thread instead of 2), so take that first use now, then
    # set this lane's own count (OpenMP's and MKL's are per thread).
    torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        info = {}
        if engine is not None and hasattr(engine, "info"):
            try:
                info = engine.info()
            except Exception:   # noqa: BLE001 - informative only
                info = {}
        info["threads"] = torch.get_num_threads()
        conn.send(("ready", startup_error[0] if startup_error else None, info))
        while True:
            msg = conn.recv()
            if msg[0] == "stop":
                break
            run_id, job = msg[1], msg[2:]
            if cancel_upto.value >= run_id:
                conn.send(("cancelled", run_id))
                continue
            if startup_error is not None:
                conn.send(("failed", run_id, *startup_error))
                continue

            def cancelled(run_id=run_id) -> bool:
                return cancel_upto.value >= run_id

            def progress(done: int, total: int, label: str = "", partial: object = None, run_id=run_id) -> None:
                if cancelled():
                    raise Cancelled("cancelled")
                conn.send(("progress", run_id, int(done), int(total), label))
                if partial is not None:
                    conn.send(("partial", run_id, partial))

            try:
                result = run_job(engine, job, progress, cancelled)
            except Cancelled:
                conn.send(("cancelled", run_id))
            except Exception as exc:  # noqa: BLE001 - every engine failure reaches the user
                conn.send(("failed", run_id, one_line(exc), traceback.format_exc()))
            else:
                try:
                    conn.send(("finished", run_id, result))
                except (pickle.PicklingError, TypeError, AttributeError) as exc:   # a bug, not a user error
                    conn.send(("failed", run_id, f"result not transferable: {one_line(exc)}",
                               traceback.format_exc()))
            result = None   # drop this process's reference before trimming
            trim_heap()
    except (EOFError, OSError, KeyboardInterrupt):
        pass   # the window went away
    finally:
        ended.set()
    conn.close()
