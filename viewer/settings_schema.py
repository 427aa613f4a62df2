"""Every stored setting of the window, with its type, range or choices and default (no Qt here).

QSettings hands back whatever the settings file holds: strings from an INI file, numbers of any size,
garbage. `read_setting` turns one stored value into a valid one; a missing value gives the default
silently, a bad one (`n=abc`, `n=1e9`, an unknown mode) gives the default and ONE warning in the log
("pose-viewer" logger), so a broken settings file can never stop the window from starting.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("pose-viewer")

#: Most recent files kept in the File menu.
MAX_RECENT = 10


@dataclass(frozen=True)
class Setting:
    """One stored setting: `kind` is int | float | str | bool | bytes | list (of str); ranges are inclusive."""

    key: str
    kind: type
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    max_items: int | None = None   # lists only

    def coerce(self, raw: Any) -> Any:
        """The valid value for `raw`, or ValueError with a short reason."""
        value = _CONVERT[self.kind](raw, self)
        if self.minimum is not None and value < self.minimum or self.maximum is not None and value > self.maximum:
            raise ValueError(f"out of range [{_fmt(self.minimum)}, {_fmt(self.maximum)}]")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"not one of {', '.join(self.choices)}")
        return value


def _fmt(x: float | None) -> str:
    return "-inf" if x is None else (str(int(x)) if float(x).is_integer() else str(x))


def _to_int(raw: Any, _: Setting) -> int:
    if isinstance(raw, bool):
        raise ValueError("a boolean, not an integer")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        if not math.isfinite(raw) or not raw.is_integer():
            raise ValueError("not a whole number")
        return int(raw)
    if isinstance(raw, str):
        text = raw.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            x = float(text)
        except ValueError:
            raise ValueError("not a number") from None
        return _to_int(x, _)
    raise ValueError(f"a {type(raw).__name__}, not a number")


def _to_float(raw: Any, _: Setting) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise ValueError(f"a {type(raw).__name__}, not a number")
    try:
        x = float(raw)
    except ValueError:
        raise ValueError("not a number") from None
    if not math.isfinite(x):
        raise ValueError("not a finite number")
    return x


def _to_str(raw: Any, _: Setting) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"a {type(raw).__name__}, not text")
    return raw


def _to_bool(raw: Any, _: Setting) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false", "1", "0"):
        return raw.strip().lower() in ("true", "1")   # an INI file holds "true" / "false"
    raise ValueError("not true or false")


def _to_bytes(raw: Any, _: Setting) -> bytes:
    if isinstance(raw, (str, int, float, list, dict)) or raw is None:
        raise ValueError(f"a {type(raw).__name__}, not binary data")
    try:
        return bytes(raw)   # bytes, bytearray, QByteArray
    except TypeError:
        raise ValueError(f"a {type(raw).__name__}, not binary data") from None


def _to_str_list(raw: Any, setting: Setting) -> list[str]:
    items = [raw] if isinstance(raw, str) else raw   # QSettings gives a 1-item list back as a string
    if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) for x in items):
        raise ValueError("not a list of file names")
    items = [x for x in items if x]
    return items[: setting.max_items] if setting.max_items is not None else list(items)


_CONVERT: dict[type, Callable[[Any, Setting], Any]] = {
    int: _to_int, float: _to_float, str: _to_str, bytes: _to_bytes, list: _to_str_list, bool: _to_bool}

#: The stored settings (QSettings keys). `engine/*` mirror viewer.panels.SettingsPanel's widgets.
SCHEMA: dict[str, Setting] = {s.key: s for s in (
    Setting("geometry", bytes, b""),
    Setting("state", bytes, b""),
    Setting("engine/n", int, 50, 1, 200),
    Setting("engine/steps", int, 10, 1, 50),
    Setting("engine/seed", int, 0, 0, 2**31 - 1),
    Setting("engine/mode", str, "cloud", choices=("cloud", "paper")),
    Setting("engine/device", str, "auto", choices=("auto", "cpu", "cuda")),
    Setting("engine/all_hands", bool, False),
    Setting("recent", list, [], max_items=MAX_RECENT),
)}


def read_setting(key: str, raw: Any) -> Any:
    """The valid value of `key` for the stored `raw` (None = not stored → default, silently);
    a bad value → default with one warning naming the key, the value and the reason."""
    setting = SCHEMA[key]
    if raw is None:
        return _fresh(setting.default)
    try:
        return setting.coerce(raw)
    except ValueError as exc:
        shown = repr(raw if not isinstance(raw, (bytes, bytearray)) else bytes(raw[:16]))
        log.warning("settings: %s=%s ignored (%s); using %r", key, shown[:60], exc, setting.default)
        return _fresh(setting.default)


def _fresh(default: Any) -> Any:
    return list(default) if isinstance(default, list) else default


def read_settings(get: Callable[[str], Any], keys: Mapping[str, Setting] | None = None) -> dict[str, Any]:
    """Every setting (or those in `keys`) read through `get(key)` (e.g. `QSettings.value`) and validated."""
    out = {}
    for key in (keys or SCHEMA):
        try:
            raw = get(key)
        except Exception as exc:  # noqa: BLE001 - a settings backend that cannot decode a value
            log.warning("settings: %s could not be read (%s); using the default", key, exc)
            raw = None
        out[key] = read_setting(key, raw)
    return out
