"""pose-viewer engine: hand models, diffusion, networks, pipelines, prior, IO and metrics (no Qt)."""

__version__ = "0.1.0"
