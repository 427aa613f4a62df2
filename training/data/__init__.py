"""Synthetic hand data: pose/shape/camera samplers, renders and dataset shards."""
