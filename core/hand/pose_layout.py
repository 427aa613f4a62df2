"""Layout of the articulated pose vector — defined once; the prior, IK and pose files all use it.

The pose vector is 45 numbers: for each of the 15 finger bones below, in this order, a local
axis-angle rotation (radians, 3 numbers) relative to the bone's rest orientation, in the bone's own
frame (Anny 'local-bone' parameterisation; MANO uses its own 15 joints in the same finger order with
axis-angle relative to the parent, flat-hand mean). Global orientation is separate: an axis-angle
rotation (3,) of the whole hand about the wrist, in the camera/world frame. Metacarpal bones are
not articulated (the 4 metacarpals of Anny stay at rest).
"""
from __future__ import annotations

FINGER_BONES_PER_FINGER = 3
#: Anny bone names of the articulated bones, thumb → pinky, proximal → distal.
ARTICULATED_BONES = tuple(f"finger{k}-{j}.R" for k in range(1, 6) for j in range(1, 4))
POSE_DIM = 3 * len(ARTICULATED_BONES)  # 45


def bone_slice(bone_index: int) -> slice:
    """Slice of the pose vector holding articulated bone `bone_index` (0..14)."""
    return slice(3 * bone_index, 3 * bone_index + 3)


def pose_dims_moving_joint(joint: int) -> list[int]:
    """Pose dimensions whose rotation moves keypoint `joint` (0..20) relative to its parent keypoint.

    Keypoint j of finger k (1..4 within the finger) is moved by the bone that ends there: the bone
    whose head is keypoint j-1 of the finger. The first keypoint of each finger (thumb CMC, finger
    MCP) and the wrist are fixed by the palm, so no articulated dimension moves them.
    """
    if joint == 0:
        return []
    finger, part = divmod(joint - 1, 4)  # part 0..3
    if part == 0:
        return []
    bone = finger * 3 + (part - 1)
    return list(range(3 * bone, 3 * bone + 3))
