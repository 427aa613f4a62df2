"""The embedded 3D view: pyvistaqt's `QtInteractor`, showing each VTK frame once.

pyvistaqt's widget re-renders the whole VTK scene in every `paintGL`, and every finished VTK render
asks for a paint (to show the frame): each change, mouse drag or unrelated repaint of the window (a
progress bar update repaints synchronously) cost two or more full renders. On software OpenGL a render
of 50 translucent meshes is tens of milliseconds, so that doubled every frame and stall
(docs/performance.md). Like VTK's C++ `QVTKOpenGLNativeWidget`, a paint that follows a finished render
here only copies that frame to the widget; any other paint (expose, resize) still renders.
"""
from __future__ import annotations

from pyvistaqt import QtInteractor
from PySide6.QtCore import QRect


class FrameInteractor(QtInteractor):
    """`QtInteractor` whose paint shows a just-rendered frame instead of rendering it again."""

    def __init__(self, *args, **kwargs) -> None:
        self._frame_ready = False
        self.frames_shown = 0   # paints that reached the screen (benchmarks wait for the next one)
        self.renders_in_paint = 0
        super().__init__(*args, **kwargs)

    def _cb_frame(self, obj, evt) -> None:  # VTK WindowFrameEvent: a render finished
        rw = self._RenderWindow
        if rw is not None and not self._in_paint and not (rw.GetDoubleBuffer() and not rw.GetSwapBuffers()):
            self._frame_ready = True
        super()._cb_frame(obj, evt)

    def resizeGL(self, w: int, h: int) -> None:
        self._frame_ready = False    # the last frame has the old size: render on the next paint
        super().resizeGL(w, h)

    def paintGL(self) -> None:
        rw = self._RenderWindow
        ready, self._frame_ready = self._frame_ready, False
        if not ready or rw is None or not rw.GetReadyForRendering():
            self.renders_in_paint += 1
            super().paintGL()
        else:
            st = rw.GetState()
            st.Reset()   # Qt touched GL since the last VTK call
            st.Push()
            self.makeCurrent()
            dpr = self.devicePixelRatioF()
            self._blit(self.defaultFramebufferObject(),
                       QRect(0, 0, max(1, round(self.width() * dpr)), max(1, round(self.height() * dpr))))
            st.Pop()
        self.frames_shown += 1
