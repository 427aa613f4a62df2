"""The Qt binding must not drop references to None.

PySide6 6.12.0 on Python 3.11 (where None is not immortal) decrements None's reference count on every
call of a method that returns nothing (`setText`, `update`, `processEvents`, …): a window in use
aborts with "Fatal Python error: none_dealloc" after some thousands of such calls (a long scrub, a
busy-wait loop). The pin in pyproject.toml avoids that release; this test fails if it comes back.
It runs in a child process so that a regression cannot abort the test session.
"""
from __future__ import annotations

import os
import subprocess
import sys

PROBE = r"""
import sys
from PySide6 import QtCore, QtWidgets
app = QtWidgets.QApplication([])
label = QtWidgets.QLabel("x")
before = sys.getrefcount(None)
for _ in range(500):
    label.setText("a")
    label.update()
    QtCore.QCoreApplication.processEvents()
print(sys.getrefcount(None) - before)
"""


def test_void_qt_calls_keep_none_alive() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    lost = -int(out.stdout.strip().splitlines()[-1])
    # 1,500 void calls: a binding that drops a reference per call loses ~1,500; noise is a few dozen.
    assert lost < 100, f"{lost} references to None lost over 1,500 void Qt calls"
