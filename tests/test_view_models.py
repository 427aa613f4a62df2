"""The viewer's models without Qt: per-field events (psygnal), batching, the trajectory's scrub / reset
distinction, mask undo, completion bookkeeping, status, settings."""
from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from viewer.state import (CompletionSettings, batch, CompletionState, DisplayState, MaskState, PoseSource, ResultState,
                          RunSettings, StatusState, TrajectoryState, ViewerModel)


def record(model) -> list[tuple[str, tuple]]:
    """Every field event of `model`, in order: (field name, args)."""
    seen: list[tuple[str, tuple]] = []
    model.events.connect(lambda info: seen.append((info.signal.name, info.args)))
    return seen


def test_models_import_neither_qt_nor_torch():
    code = ("import sys, viewer.state; bad = [m for m in ('PySide6', 'torch', 'vtk') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_field_emits_only_when_its_value_changes():
    d = DisplayState()
    seen = record(d)
    modes = []
    d.events.mode.connect(modes.append)
    d.mode = "best"
    d.mode = "best"               # same value: nothing
    d.index = 3
    assert seen == [("mode", ("best", "all")), ("index", (3, 0))]
    assert modes == ["best"]


def test_update_sets_several_fields_then_notifies_with_the_model_consistent():
    d = DisplayState()
    states = []
    d.events.connect(lambda info: states.append((info.signal.name, d.mode, d.index)))
    d.update(mode="single", index=4)
    assert states == [("mode", "single", 4), ("index", "single", 4)]   # both set before any observer runs
    with pytest.raises(ValueError, match="display mode"):
        d.update(mode="sideways")
    with pytest.raises(ValueError, match="view"):
        d.update(view="photo")
    assert d.mode == "single"
    assert d.selected(best=7) == 4 and DisplayState(mode="best").selected(best=7) == 7


def frames(n: int, kind: str = "joints") -> list:
    return [(f"{kind} {k}/{n - 1}", kind, np.full((2, 21, 3), k, np.float32)) for k in range(n)]


def test_trajectory_reset_and_extend_move_no_step_a_scrub_does():
    t = TrajectoryState()
    seen = record(t)
    t.reset(frames(4))
    assert (t.n_steps, t.step, t.at_result) == (4, 3, True)
    assert [name for name, _ in seen] == ["frames"]          # no `step` event: not a scrub
    assert t.label == "joints 3/3 (result)"
    seen.clear()
    t.extend(frames(4) + frames(3, "mesh"))                  # at the result: stays at the (new) result
    assert (t.n_steps, t.step) == (7, 6) and [name for name, _ in seen] == ["frames"]
    seen.clear()
    t.set_step(1)
    assert seen == [("step", (1, 6))] and t.label == "joints 1/3"
    t.set_step(99)                                           # clipped to the last step
    assert t.step == 6
    seen.clear()
    t.set_step(2)
    t.extend(frames(9))                                      # not at the result: the position stays
    assert t.step == 2 and [name for name, _ in seen] == ["step", "frames"]
    t.advance(-5)
    assert t.step == 0
    assert TrajectoryState().label == "no trajectory"


def test_step_observers_can_be_blocked():
    t = TrajectoryState()
    t.reset(frames(5))
    steps = []
    t.events.step.connect(steps.append)
    with t.events.step.blocked():
        t.set_step(1)
    t.set_step(2)
    assert steps == [2] and t.step == 2


def test_mask_compares_by_value_and_undoes():
    m = MaskState()
    seen = record(m)
    m.toggle(8)
    assert m.hidden[8] and m.hidden.sum() == 1
    m.set(m.hidden.copy())                                   # an equal array: no event, no history
    assert len(seen) == 1 and len(m.history) == 1
    m.set(np.arange(21) % 2 == 0)
    assert m.undo() and m.hidden[8] and m.hidden.sum() == 1
    assert m.undo() and not m.hidden.any()
    assert not m.undo()
    m.toggle(3)
    m.clear()
    assert not m.hidden.any()
    with pytest.raises(ValueError):
        m.set(np.zeros(20, bool))


def tto_result(s: int = 3, iters: int = 5):
    rng = np.random.default_rng(0)
    return SimpleNamespace(pose=np.zeros((s, 45)), t_schedule=np.linspace(0.15, 0.05, iters),
                           joints=rng.normal(size=(s, 21, 3)), traj_joints=rng.normal(size=(iters, s, 21, 3)))


def test_completion_state_tracks_source_result_iteration_and_selection():
    c = CompletionState()
    events = record(c)
    source = PoseSource("p", np.zeros((21, 3), np.float32))
    c.set_source(source)
    assert c.display_joints() is None and not c.final
    live = np.ones((3, 21, 3))
    c.set_live(live, 2)
    assert c.display_joints() is live and not c.final
    c.selected = 7
    r = tto_result()
    c.set_result(r, np.zeros((3, 10, 3)))
    assert c.final and c.iteration == 5 and c.display_joints() is r.joints
    assert c.selected == 2                                   # clamped to the S completions
    c.set_iteration(1)
    assert np.array_equal(c.display_joints(), r.traj_joints[1]) and not c.final
    c.set_iteration(50)
    assert c.iteration == 5
    names = [n for n, _ in events]
    assert names.count("source") == 1 and "result" in names and "live_joints" in names
    events.clear()
    c.set_source(source)                                     # the same source again: no `source` event
    assert "source" not in [n for n, _ in events] and c.result is None and c.iteration == 0


def test_result_observers_see_the_reprojection_errors_of_the_new_result():
    rs = ResultState()
    seen = []
    rs.events.result.connect(lambda _r: seen.append((rs.n, rs.best)))
    result = SimpleNamespace(joint_hypotheses=np.zeros((4, 21, 3)))
    rs.set(result, np.array([3.0, 1.0, 2.0, 5.0]))
    assert seen == [(4, 1)]
    rs.set(result, np.array([3.0, 1.0, 2.0, 5.0]))            # the same result object: no new event
    assert len(seen) == 1
    assert ResultState().n == 0 and ResultState().best == 0


def test_status_notifies_every_message_and_failure():
    st = StatusState()
    messages, errors = [], []
    st.events.message.connect(messages.append)
    st.events.error.connect(errors.append)
    st.message = "hello"
    st.message = "hello"
    assert messages == ["hello", "hello"]
    assert st.fail("broken") is False and st.fail("broken") is False
    assert errors == ["broken", "broken"] and st.error == "broken"


def test_settings_are_plain_values():
    assert RunSettings().values() == {"n": 50, "steps": 10, "seed": 0, "mode": "cloud", "device": "auto",
                                      "all_hands": False}
    s = CompletionSettings()
    seen = record(s)
    with batch(s):
        s.t_max, s.t_min = 0.4, 0.1
        s.t_max = 0.5
        assert seen == []                                   # held back until the batch ends …
    assert s.values()["t_max"] == 0.5 and sorted(seen) == [("t_max", (0.5, 0.15)), ("t_min", (0.1, 0.05))]   # … once each
    m = ViewerModel()
    assert m.display.view == "pose" and m.status.error is None and m.trajectory.n_steps == 0
