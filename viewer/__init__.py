"""Qt desktop viewer (PySide6 + pyvistaqt). Imports core; does no tensor math beyond display."""
