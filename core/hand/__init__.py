"""Hand models behind one interface: Anny (default, ships with PyPI) and MANO (user-provided file)."""
from core.errors import HandModelError
from core.hand.pose_layout import POSE_DIM, ARTICULATED_BONES

__all__ = ["HandModel", "HandOutput", "HandModelError", "POSE_DIM", "ARTICULATED_BONES", "load_hand_model"]


def __getattr__(name: str):
    """`HandModel` / `HandOutput` load torch on first use: `core.hand.pose_layout` (pose files) must not."""
    if name in ("HandModel", "HandOutput"):
        from core.hand import base

        return getattr(base, name)
    raise AttributeError(f"module 'core.hand' has no attribute {name!r}")


def load_hand_model(name: str = "anny", mano_dir: str | None = None, device: str = "cpu") -> "HandModel":
    """Construct a hand model by name ('anny' or 'mano'); MANO needs the folder holding MANO_RIGHT.pkl."""
    if name == "anny":
        from core.hand.anny_hand import AnnyHand

        return AnnyHand().to(device)
    if name == "mano":
        from core.hand.mano_hand import ManoHand

        return ManoHand(mano_dir).to(device)
    raise HandModelError(f"unknown hand model {name!r} (use 'anny' or 'mano')")
