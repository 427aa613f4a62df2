"""Qt desktop viewer (PySide6 + VTK). Imports core; does no tensor math beyond display."""
