"""Mesh utilities for the stage-2 autoencoder: spiral sequences, down/up-sampling, joint regressor."""
from core.mesh.sampling import MeshSampling, load_sampling

__all__ = ["MeshSampling", "load_sampling"]
