"""The photo with detected 2D keypoints, hand boxes and the reprojected result drawn over it."""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from core.joints import BONES
from viewer.scene import joint_colours


def _qcolor(rgb, alpha: int = 255) -> QtGui.QColor:
    return QtGui.QColor(int(rgb[0] * 255), int(rgb[1] * 255), int(rgb[2] * 255), alpha)


def _same(a, b) -> bool:
    """Equality of nested tuples / lists of arrays, numbers and None."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if a is None or b is None:
        return a is b
    return np.array_equal(a, b)


HINT = ("Drop a photo of a hand here<br>(or File ▸ Open…)"
        "<br><br><a href=\"sample\" style=\"color:#8ab4f8\">Open the sample photo</a>")


class ImagePanel(QtWidgets.QWidget):
    """Shows the current image scaled to fit; clicking inside a detected hand's box chooses that hand.
    Empty, it shows a (word-wrapped) hint with a link that opens the bundled sample photo."""

    hand_clicked = QtCore.Signal(int)
    box_drawn = QtCore.Signal(object)     # (x0, y0, x1, y1) image px: a box the user dragged around a missed hand
    sample_requested = QtCore.Signal()
    DRAG_PX = 6                           # a press that moves farther than this draws a box (else it is a click)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(200, 200)
        self.hint = QtWidgets.QLabel(HINT, self)
        self.hint.setObjectName("image_hint")
        self.hint.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: #aaaaaa")
        self.hint.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.LinksAccessibleByMouse
                                          | QtCore.Qt.TextInteractionFlag.LinksAccessibleByKeyboard)
        self.hint.linkActivated.connect(lambda _link: self.sample_requested.emit())
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.hint)
        self._qimage: QtGui.QImage | None = None
        self._image: np.ndarray | None = None
        self.boxes: list[np.ndarray] = []           # (4,) x0, y0, x1, y1 px per detected hand
        self.chosen = 0
        self.keypoints: np.ndarray | None = None    # (21,2) detected keypoints of the chosen hand
        self.reprojected: np.ndarray | None = None  # (21,2) reprojected aggregate
        self.highlight: np.ndarray | None = None    # (21,2) reprojected selected hypothesis
        self.side_text = ""                         # the chosen hand's side, drawn on its box (core.side)
        self._press: QtCore.QPointF | None = None    # where a left press started (a click or a box)
        self.drag_rect: QtCore.QRectF | None = None  # the box being drawn (widget px)
        self.setToolTip("The photo: detected keypoints (dots), reprojected result (white skeleton), "
                        "selected hypothesis (yellow). Click a hand to choose it; drag a box around a hand the "
                        "detector missed to estimate it.")

    def set_image(self, image: np.ndarray | None) -> None:
        self._image = None if image is None else np.ascontiguousarray(image)
        if self._image is None:
            self._qimage = None
        else:
            h, w = self._image.shape[:2]
            self._qimage = QtGui.QImage(self._image.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888)
        self.hint.setVisible(self._qimage is None)
        self.update()

    def bind(self, model) -> None:
        """Show `model`'s photo (viewer.state.ViewerModel) with the chosen hand's keypoints, the reprojected
        result and the selected hypothesis drawn over it."""
        model.image_state.events.image.connect(self.set_image)
        model.result_state.events.result.connect(lambda: self.show_result(model))
        model.display.events.connect(lambda: self.show_result(model))

    def show_result(self, model) -> None:
        from core.geometry import project

        r, d, st = model.result_state.result, model.display, model.image_state
        if r is None:
            return
        sel = d.selected(model.result_state.best)
        side = r.side.describe() if getattr(r, "side", None) is not None else f"{r.handedness} hand"
        if side != self.side_text:
            self.side_text = side
            self.update()
        self.set_overlay(boxes=[det.box for det in st.detections], chosen=st.chosen, keypoints=r.keypoints2d,
                         reprojected=project(r.joints + r.cam_t, r.K),
                         highlight=project(r.joint_hypotheses[sel] + r.cam_t, r.K) if d.mode != "aggregate" else None)

    def set_overlay(self, boxes=None, chosen: int = 0, keypoints=None, reprojected=None, highlight=None) -> None:
        """Repaints only when something drawn changed: scrubbing the trajectory re-sends the same overlay
        every step, and a repaint of the photo costs a few ms of a scrub frame."""
        boxes = [] if boxes is None else [np.asarray(b) for b in boxes]
        new = (boxes, chosen, keypoints, reprojected, highlight)
        if _same(new, (self.boxes, self.chosen, self.keypoints, self.reprojected, self.highlight)):
            return
        self.boxes, self.chosen, self.keypoints, self.reprojected, self.highlight = new
        self.update()

    # -- geometry -------------------------------------------------------------------------------
    def _transform(self) -> tuple[float, float, float]:
        """Scale and offset mapping image pixels to widget pixels (aspect kept, centred)."""
        if self._qimage is None:
            return 1.0, 0.0, 0.0
        w, h = self._qimage.width(), self._qimage.height()
        s = min(self.width() / w, self.height() / h)
        return s, (self.width() - w * s) / 2, (self.height() - h * s) / 2

    def image_to_widget(self, uv: np.ndarray) -> np.ndarray:
        s, ox, oy = self._transform()
        return np.asarray(uv, np.float64) * s + [ox, oy]

    def widget_to_image(self, x: float, y: float) -> tuple[float, float]:
        s, ox, oy = self._transform()
        return (x - ox) / s, (y - oy) / s

    # -- painting -------------------------------------------------------------------------------
    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 - Qt API
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QtGui.QColor("#15171a"))
        if self._qimage is None:
            return    # the hint label is showing
        s, ox, oy = self._transform()
        target = QtCore.QRectF(ox, oy, self._qimage.width() * s, self._qimage.height() * s)
        p.drawImage(target, self._qimage)
        from viewer.camera_view import hand_colour

        for i, box in enumerate(self.boxes):
            a = self.image_to_widget(box[:2])
            b = self.image_to_widget(box[2:4])
            pen = QtGui.QPen(_qcolor(hand_colour(i)), 3 if i == self.chosen else 1.5)   # the hand's colour in 3D
            pen.setStyle(QtCore.Qt.PenStyle.SolidLine if i == self.chosen else QtCore.Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.drawRect(QtCore.QRectF(a[0], a[1], b[0] - a[0], b[1] - a[1]))
            if i == self.chosen and self.side_text:
                self._draw_label(p, a, self.side_text)
        if self.reprojected is not None:
            self._draw_skeleton(p, self.reprojected, QtGui.QColor(255, 255, 255, 200), 2)
        if self.highlight is not None:
            self._draw_skeleton(p, self.highlight, QtGui.QColor(255, 210, 63, 230), 2)
        if self.drag_rect is not None:
            p.setPen(QtGui.QPen(QtGui.QColor("#8ab4f8"), 1.5, QtCore.Qt.PenStyle.DashLine))
            p.setBrush(QtGui.QColor(138, 180, 248, 40))
            p.drawRect(self.drag_rect)
            p.setBrush(QtCore.Qt.BrushStyle.NoBrush)
        if self.keypoints is not None:
            cols = joint_colours()
            for j, uv in enumerate(self.image_to_widget(self.keypoints)):
                p.setPen(QtGui.QPen(QtGui.QColor("black"), 1))
                p.setBrush(_qcolor(cols[j]))
                p.drawEllipse(QtCore.QPointF(*uv), 3.5, 3.5)

    def _draw_label(self, p: QtGui.QPainter, corner: np.ndarray, text: str) -> None:
        """`text` on a dark tag just above the box corner, moved in where it would leave the panel."""
        rect = p.fontMetrics().boundingRect(text).adjusted(-4, -2, 4, 2)
        rect.moveTo(max(min(int(corner[0]), self.width() - rect.width()), 0),
                    max(int(corner[1]) - rect.height() - 2, 0))
        p.fillRect(rect, QtGui.QColor(0, 0, 0, 170))
        p.setPen(QtGui.QColor("#ffd23f"))
        p.drawText(rect, QtCore.Qt.AlignmentFlag.AlignCenter, text)

    def _draw_skeleton(self, p: QtGui.QPainter, uv: np.ndarray, colour: QtGui.QColor, width: int) -> None:
        pts = self.image_to_widget(uv)
        p.setPen(QtGui.QPen(colour, width))
        for a, b in BONES:
            p.drawLine(QtCore.QPointF(*pts[a]), QtCore.QPointF(*pts[b]))

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.button() == QtCore.Qt.MouseButton.LeftButton and self._qimage is not None:
            self._press = event.position()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._press is not None:
            d = event.position() - self._press
            if self.drag_rect is not None or abs(d.x()) + abs(d.y()) > self.DRAG_PX:
                self.drag_rect = QtCore.QRectF(self._press, event.position()).normalized()
                self.update()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt API
        """A click inside a hand's box chooses it; a drag draws a box (`box_drawn`, image px)."""
        if self._press is None:
            super().mouseReleaseEvent(event)
            return
        press, rect, self._press, self.drag_rect = self._press, self.drag_rect, None, None
        if rect is not None:
            self.update()
            x0, y0 = self.widget_to_image(rect.left(), rect.top())
            x1, y1 = self.widget_to_image(rect.right(), rect.bottom())
            h, w = self._image.shape[:2]
            self.box_drawn.emit((max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h))))
            return
        u, v = self.widget_to_image(press.x(), press.y())
        inside = [i for i, box in enumerate(self.boxes) if box[0] <= u <= box[2] and box[1] <= v <= box[3]]
        if inside:   # nested boxes: the smallest one
            self.hand_clicked.emit(min(inside, key=lambda i: (self.boxes[i][2] - self.boxes[i][0])))
