"""Data synthesis, training and evaluation scripts (imports core; never imported by core or viewer)."""
