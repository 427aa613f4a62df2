"""Started by bench_viewer.py: opens the window and prints FIRST_FRAME once the 3D view has rendered."""
import sys

from viewer.app import qt_environment

qt_environment()
from PySide6 import QtCore, QtWidgets  # noqa: E402

from viewer.main_window import MainWindow  # noqa: E402

app = QtWidgets.QApplication(sys.argv[:1])
w = MainWindow()
w.show()


shown = []


def first_frame(*_):
    if not shown:   # once: the neutral hand (a shipped mesh) may be drawn in the first event-loop turn
        shown.append(True)
        print("FIRST_FRAME", flush=True)


def hand_shown(*_):
    w.plotter.render()
    first_frame()
    print("HAND_SHOWN", flush=True)
    QtCore.QTimer.singleShot(0, w.close)


w.plotter.render()
QtCore.QTimer.singleShot(0, first_frame)
w.model_ready.connect(hand_shown)
app.exec()
