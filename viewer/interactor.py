"""The embedded 3D view: pyvistaqt's `QtInteractor` in its native-window form (pyvistaqt 0.12).

VTK renders straight into the widget's own window and swaps it on screen; Qt never composes that frame.
pyvistaqt 0.13 moved to a framebuffer-object `QOpenGLWidget`, which makes Qt compose the whole main
window through OpenGL for every VTK frame: on software OpenGL (llvmpipe) that composition cost more
than the render itself (docs/performance.md: scrub frame 41.8 → 20.7 ms in a back-to-back probe), so the
dependency is pinned to 0.12.0 (pyproject.toml). Window repaints elsewhere (a progress bar, the image
panel) no longer re-render the 3D scene either: only expose and resize events of this window do.
"""
from __future__ import annotations

from pyvistaqt import QtInteractor


class FrameInteractor(QtInteractor):
    """`QtInteractor` that counts the frames it puts on screen (benchmarks and tests wait for the next)."""

    def __init__(self, *args, **kwargs) -> None:
        self.frames_shown = 0
        super().__init__(*args, **kwargs)
        # EndEvent comes after the render window swapped its buffers: the frame is on screen.
        self.ren_win.AddObserver("EndEvent", self._count_frame)

    def _count_frame(self, _obj, _evt) -> None:
        self.frames_shown += 1
