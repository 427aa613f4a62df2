"""The window's icons: Font Awesome 5 solid glyphs ('fa5s.<name>'), drawn by qtawesome from that one font.

`qtawesome.icon` loads every icon font qtawesome bundles (thirteen fonts and their charmaps) at its
first call: +16 MB in the window process for the few fa5s icons the window shows (measured, issue 27).
Same glyphs, same painter: only the font that is used is loaded.
"""
from __future__ import annotations

from PySide6 import QtGui

FA5_SOLID = ("fa5s", "fontawesome5-solid-webfont-5.15.4.ttf", "fontawesome5-solid-webfont-charmap-5.15.4.json")
_font = None   # qtawesome.iconic_font.IconicFont holding FA5_SOLID only (needs a QApplication: made on first use)


def icon(name: str) -> QtGui.QIcon:
    """The icon 'fa5s.<name>' (qtawesome's name for Font Awesome 5 solid)."""
    global _font
    if _font is None:
        from qtawesome.iconic_font import IconicFont

        _font = IconicFont(FA5_SOLID)
    return _font.icon(name)
