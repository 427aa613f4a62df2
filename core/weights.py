"""Shipped weights: `resources/models/<name>.safetensors` + `resources/models/manifest.json` (DESIGN §9).

Loaded without pickle (safetensors), checked against the sha256 in the manifest; a missing or
corrupt file raises `WeightsError` naming the file and the command that retrains it.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import pathlib
from collections.abc import Callable
from typing import Any

import torch

from core.errors import WeightsError
from core.paths import MODELS_DIR

MANIFEST = "manifest.json"


def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(models_dir: pathlib.Path = MODELS_DIR) -> dict[str, Any]:
    path = models_dir / MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: manifest is unreadable ({exc})") from exc


def load_weights(name: str, models_dir: pathlib.Path = MODELS_DIR) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return (state_dict in float32, manifest entry) for model `name`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    entry = read_manifest(models_dir).get(name)
    path = models_dir / f"{name}.safetensors"
    retrain = (entry or {}).get("train_command", f"see training/README.md ({name})")
    if entry is None or not path.exists():
        raise WeightsError(f"{path}: weights for '{name}' are missing; retrain with: {retrain}")
    if entry.get("sha256") and _sha256(path) != entry["sha256"]:
        raise WeightsError(f"{path}: checksum does not match the manifest (corrupt file?); retrain with: {retrain}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: cannot be read ({exc}); retrain with: {retrain}") from exc
    return {k: v.float() for k, v in state.items()}, entry


def save_weights(name: str, state: dict[str, torch.Tensor], config: dict[str, Any], train_command: str,
                 metrics: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
                 half: bool = True, models_dir: pathlib.Path = MODELS_DIR) -> pathlib.Path:
    """Write `<name>.safetensors` (fp16 unless `half=False`) and update its manifest entry."""
    from safetensors.torch import save_file

    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / f"{name}.safetensors"
    tensors = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).contiguous().cpu()
               for k, v in state.items()}
    tmp = path.with_suffix(".part")
    save_file(tensors, str(tmp))
    tmp.replace(path)
    manifest = read_manifest(models_dir)
    manifest[name] = {
        "file": path.name,
        "sha256": _sha256(path),
        "config": config,
        "train_command": train_command,
        "metrics": metrics or {},
        "date": datetime.date.today().isoformat(),
        **(extra or {}),
    }
    (models_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def load_into(net: torch.nn.Module, state: dict[str, torch.Tensor], name: str, entry: dict[str, Any]) -> None:
    """`net.load_state_dict(state)`; a mismatch (other architecture, wrong shapes) becomes one readable
    `WeightsError` line that names the file and the command that retrains it."""
    missing, unexpected, wrong = [], [], []
    own = net.state_dict()
    for key, value in state.items():
        if key not in own:
            unexpected.append(key)
        elif tuple(own[key].shape) != tuple(value.shape):
            wrong.append(key)
    missing = [k for k in own if k not in state]
    if missing or unexpected or wrong:
        detail = ", ".join(f"{len(v)} {what} (e.g. {v[0]})" for what, v in
                           (("missing", missing), ("unexpected", unexpected), ("wrong-shape", wrong)) if v)
        raise WeightsError(f"{MODELS_DIR.name}/{name}.safetensors does not match the network: {detail}; "
                           f"retrain with: {entry.get('train_command', 'see training/README.md')}")
    net.load_state_dict(state)


def load_network(name: str, build: Callable[[dict[str, Any]], torch.nn.Module],
                 models_dir: pathlib.Path | str | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Weights `name` → (network in eval mode, manifest entry). `build(config)` makes the network from
    the manifest's config; a config that does not fit, or weights that do not match, become one
    `WeightsError` line naming the file and the command that retrains it."""
    state, entry = load_weights(name, MODELS_DIR if models_dir is None else pathlib.Path(models_dir))
    try:
        net = build(entry.get("config", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{name}: the manifest's network config is invalid ({exc}); retrain with: "
                           f"{entry.get('train_command', 'see training/README.md')}") from exc
    load_into(net, state, name, entry)
    return net.eval(), entry
