"""A small plot of DPoser's timestep schedule t(iteration) with draggable t_max / t_min handles."""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

MARGIN = 34
HANDLE_R = 6


class SchedulePlot(QtWidgets.QWidget):
    """Draws t against iteration; drag the left handle (t_max) or the right one (t_min) of a truncated
    schedule; a vertical line marks the iteration shown by the scrubber."""

    range_dragged = QtCore.Signal(float, float)   # t_max, t_min while dragging
    range_released = QtCore.Signal(float, float)  # when the drag ends

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(260, 160)
        self.times = np.zeros(0)
        self.kind = "truncated"
        self.t_max, self.t_min = 0.15, 0.05
        self.iteration = 0
        self._drag: str | None = None
        self.setToolTip("t(iteration) of the test-time optimisation. Drag the handles to change t_max / t_min.")
        self.setMouseTracking(True)

    def set_schedule(self, times: np.ndarray, kind: str, t_max: float, t_min: float) -> None:
        self.times, self.kind, self.t_max, self.t_min = np.asarray(times, float), kind, t_max, t_min
        self.update()

    def set_iteration(self, iteration: int) -> None:
        self.iteration = iteration
        self.update()

    # -- coordinates ------------------------------------------------------------------------------
    def _plot_rect(self) -> QtCore.QRectF:
        return QtCore.QRectF(MARGIN, 8, max(self.width() - MARGIN - 10, 10), max(self.height() - MARGIN - 8, 10))

    def to_widget(self, it: float, t: float) -> QtCore.QPointF:
        r = self._plot_rect()
        n = max(len(self.times) - 1, 1)
        return QtCore.QPointF(r.left() + r.width() * it / n, r.bottom() - r.height() * t)

    def t_at(self, y: float) -> float:
        r = self._plot_rect()
        return float(np.clip((r.bottom() - y) / r.height(), 0.0, 1.0))

    def handle_positions(self) -> dict[str, QtCore.QPointF]:
        n = max(len(self.times) - 1, 1)
        return {"t_max": self.to_widget(0, self.t_max), "t_min": self.to_widget(n, self.t_min)}

    # -- painting ---------------------------------------------------------------------------------
    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 - Qt API
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), self.palette().base())
        r = self._plot_rect()
        p.setPen(QtGui.QPen(self.palette().text().color(), 1))
        p.drawRect(r)
        for t in (0.0, 0.5, 1.0):
            pt = self.to_widget(0, t)
            p.drawText(QtCore.QPointF(4, pt.y() + 4), f"{t:.1f}")
        p.drawText(QtCore.QRectF(r.left(), r.bottom() + 4, r.width(), 20), QtCore.Qt.AlignmentFlag.AlignHCenter,
                   f"iteration (0 … {max(len(self.times) - 1, 0)})")
        if len(self.times):
            path = QtGui.QPainterPath(self.to_widget(0, self.times[0]))
            for i, t in enumerate(self.times[1:], 1):
                path.lineTo(self.to_widget(i, t))
            p.setPen(QtGui.QPen(QtGui.QColor("#3d8bfd"), 2))
            p.drawPath(path)
            x = self.to_widget(min(self.iteration, len(self.times) - 1), 0).x()
            p.setPen(QtGui.QPen(QtGui.QColor("#ffb000"), 1, QtCore.Qt.PenStyle.DashLine))
            p.drawLine(QtCore.QPointF(x, r.top()), QtCore.QPointF(x, r.bottom()))
        if self.kind == "truncated":
            p.setBrush(QtGui.QColor("#ffd23f"))
            p.setPen(QtGui.QPen(QtGui.QColor("black"), 1))
            for pos in self.handle_positions().values():
                p.drawEllipse(pos, HANDLE_R, HANDLE_R)

    # -- dragging ---------------------------------------------------------------------------------
    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self.kind != "truncated":
            return
        pos = event.position()
        for name, h in self.handle_positions().items():
            if (h - pos).manhattanLength() < 3 * HANDLE_R:
                self._drag = name
                return

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._drag is None:
            return
        t = round(self.t_at(event.position().y()), 3)
        if self._drag == "t_max":
            self.t_max = max(t, self.t_min)
        else:
            self.t_min = min(t, self.t_max)
        self.range_dragged.emit(self.t_max, self.t_min)
        self.update()

    def mouseReleaseEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._drag is not None:
            self._drag = None
            self.range_released.emit(self.t_max, self.t_min)
