"""Neural networks of the engine (pure torch, no weights here: see core/weights.py)."""
