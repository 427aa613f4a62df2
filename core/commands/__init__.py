"""Headless CLI sub-commands. Each module defines `register(subparsers)` that sets `func(args) -> int`."""
