"""Off-screen renders of the hand mesh for synthetic training images (one reused pyvista plotter).

The VTK camera sits at the origin of the OpenCV camera frame looking along +z with view-up −y, its
vertical view angle is set from fy and the principal point through the window centre, so a mesh given
in camera coordinates lands exactly where `core.geometry.project(points, K)` puts it. The hand is drawn
over a transparent background and composited in numpy onto a random background (solid, gradient or
noise/texture patches); skin tone and lighting are randomised per frame.
"""
from __future__ import annotations

import math
import os

import numpy as np

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

IMAGE_SIZE = 256

#: Skin tones (sRGB 0..1) from very light to very dark (roughly the Fitzpatrick / Monk scale range).
SKIN_TONES = np.array([
    [246, 226, 212], [243, 214, 190], [234, 196, 168], [224, 178, 146], [205, 155, 120],
    [185, 132, 98], [160, 108, 76], [128, 84, 58], [96, 62, 44], [68, 44, 32],
], dtype=np.float64) / 255.0


def sample_skin_tone(rng: np.random.Generator) -> np.ndarray:
    """A skin colour (3,) in 0..1: interpolated along SKIN_TONES with a small hue/brightness jitter."""
    t = rng.uniform(0, len(SKIN_TONES) - 1)
    i = min(int(t), len(SKIN_TONES) - 2)
    c = SKIN_TONES[i] * (1 - (t - i)) + SKIN_TONES[i + 1] * (t - i)
    c = c * rng.uniform(0.92, 1.06) + rng.normal(0, 0.015, 3)
    return np.clip(c, 0, 1)


def _smooth(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth value noise (size,size) in 0..1 from a cells×cells random grid, bilinearly upsampled."""
    import cv2

    g = rng.uniform(0, 1, (cells, cells)).astype(np.float32)
    return cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A random colour (3,) in 0..1, mostly muted like indoor scenes, sometimes saturated."""
    grey = rng.uniform(0.05, 0.95)
    sat = rng.beta(1.2, 3.0)
    return np.clip(grey + sat * (rng.uniform(0, 1, 3) - grey), 0, 1)


def random_background(rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """A random background (size,size,3) float 0..1: solid, linear gradient, smooth noise or patches."""
    kind = rng.choice(4, p=[0.2, 0.25, 0.3, 0.25])
    c1, c2 = _colour(rng), _colour(rng)
    if kind == 0:
        bg = np.broadcast_to(c1, (size, size, 3)).copy()
    elif kind == 1:
        a = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:size, 0:size] / (size - 1) - 0.5
        t = np.clip(np.cos(a) * xx + np.sin(a) * yy + 0.5, 0, 1)[..., None]
        bg = c1 * (1 - t) + c2 * t
    elif kind == 2:
        t = _smooth(rng, size, int(rng.integers(2, 12)))[..., None]
        bg = c1 * (1 - t) + c2 * t
    else:
        import cv2

        bg = np.broadcast_to(c1, (size, size, 3)).copy()
        for _ in range(int(rng.integers(3, 12))):
            col = tuple(float(v) for v in _colour(rng))
            x0, y0 = (int(v) for v in rng.integers(-size // 4, size, 2))
            w, h = (int(v) for v in rng.integers(size // 8, size // 2, 2))
            if rng.random() < 0.5:
                cv2.rectangle(bg, (x0, y0), (x0 + w, y0 + h), col, -1)
            else:
                cv2.ellipse(bg, (x0, y0), (w // 2, h // 2), float(rng.uniform(0, 180)), 0, 360, col, -1)
        bg = cv2.GaussianBlur(bg, (0, 0), float(rng.uniform(0.5, 3.0)))
    bg = bg + rng.normal(0, rng.uniform(0, 0.04), bg.shape)  # sensor-like grain
    return np.clip(bg, 0, 1)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(x) * 255 + 0.5, 0, 255).astype(np.uint8)


#: Palms are lighter and pinker than the back of the hand, markedly so for dark skin.
_PALM_TONE = np.array([0.87, 0.68, 0.58])


def skin_colours(skin: np.ndarray, palm_weight: np.ndarray) -> np.ndarray:
    """Per-vertex colours (V,3): the skin colour, blended toward a palm tone on the palm side."""
    darkness = 1 - float(skin @ [0.3, 0.59, 0.11]) / 0.9
    amount = np.clip(0.1 + 0.5 * darkness, 0, 0.6) * palm_weight[:, None]
    return skin[None] * (1 - amount) + _PALM_TONE[None] * amount


def palm_weights(rest_vertices: np.ndarray, faces: np.ndarray, palm_normal=(-1.0, 0.0, 0.0)) -> np.ndarray:
    """Palm-side weight (V,) in [0, 1] from the rest-pose normals (Anny canonical frame: palm faces −x,
    fingers along +y, wrist at the origin); faded out over the first 1.5-4.5 cm so the wrist matches the arm."""
    v = np.asarray(rest_vertices, np.float64)
    d = vertex_normals(v, faces) @ np.asarray(palm_normal)
    return np.clip((d - 0.1) / 0.5, 0, 1) * np.clip((v[:, 1] - 0.015) / 0.03, 0, 1)


def camera_degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Webcam-like degradations on a uint8 RGB image: slight blur (60 %), JPEG re-encoding (50 %)."""
    import cv2

    if rng.random() < 0.6:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 1.2)))
    if rng.random() < 0.5:
        _, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]),
                              [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 95))])
        img = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return img


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V,3) of a triangle mesh."""
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    vn = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)


def boundary_loop(faces: np.ndarray) -> np.ndarray:
    """Ordered vertex indices of the longest boundary loop of a triangle mesh (the Anny wrist opening)."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key, count = np.unique(np.sort(edges, 1), axis=0, return_counts=True)
    nxt: dict[int, list[int]] = {}
    for a, b in key[count == 1]:
        nxt.setdefault(int(a), []).append(int(b))
        nxt.setdefault(int(b), []).append(int(a))
    loops, seen = [], set()
    for start in nxt:
        if start in seen:
            continue
        loop, prev, cur = [start], None, start
        seen.add(start)
        while True:
            cand = [v for v in nxt[cur] if v != prev and v not in seen]
            if not cand:
                break
            prev, cur = cur, cand[0]
            loop.append(cur)
            seen.add(cur)
        loops.append(loop)
    return np.array(max(loops, key=len), dtype=np.int64)


#: Forearm rings: 5 on the skin part (wrist → sleeve start), 3 on the sleeve.
_SKIN_RINGS, _SLEEVE_RINGS = 5, 3


def forearm_faces(ring: int) -> np.ndarray:
    """Triangles joining consecutive rings of `ring` vertices, plus an end cap around a centre vertex."""
    n_rings = _SKIN_RINGS + _SLEEVE_RINGS
    tri = []
    for r in range(n_rings - 1):
        for k in range(ring):
            a, b = r * ring + k, r * ring + (k + 1) % ring
            tri += [(a, b, b + ring), (a, b + ring, a + ring)]
    centre = n_rings * ring
    last = (n_rings - 1) * ring
    tri += [(last + k, centre, last + (k + 1) % ring) for k in range(ring)]
    return np.array(tri, dtype=np.int64)


def forearm_points(loop_pts: np.ndarray, hand_centroid: np.ndarray, rng: np.random.Generator,
                   length: float = 0.8) -> tuple[np.ndarray, int] | None:
    """Forearm vertices (camera frame) extruded from the wrist loop (L,3) away from the hand, with a
    random wrist bend (≤ 35°) and a random sleeve start; returns (points, index of the first sleeve
    vertex), or None when the arm would pass through the camera. An arm coming toward the camera is
    lengthened to end behind it, so its end never shows as a stump."""
    c0 = loop_pts.mean(0)
    _, _, vt = np.linalg.svd(loop_pts - c0)
    n = vt[2] if np.dot(vt[2], c0 - hand_centroid) > 0 else -vt[2]
    tilt = np.cross(n, rng.normal(0, 1, 3))
    d = n + np.tan(np.radians(rng.uniform(0, 35))) * tilt / max(np.linalg.norm(tilt), 1e-9)
    d /= np.linalg.norm(d)
    if d[2] < 0:
        length = max(length, c0[2] / -d[2] + 0.1)
        t_near = np.clip(-np.dot(c0, d), 0, length)  # closest approach of the axis to the camera
        if np.linalg.norm(c0 + t_near * d) < 0.1:
            return None
    sleeve = rng.uniform(0.05, 0.25) if rng.random() < 0.6 else length
    ts = np.concatenate([np.linspace(0, sleeve, _SKIN_RINGS), np.linspace(sleeve, length, _SLEEVE_RINGS)])
    widen = 1 + 0.22 * (1 - np.exp(-ts / 0.05))
    widen[_SKIN_RINGS:] *= 1.12  # a sleeve is a little thicker than the arm
    rings = [c0 + t * (d if t > 0 else n) + w * (loop_pts - c0) for t, w in zip(ts, widen)]
    pts = np.concatenate(rings + [(c0 + length * d)[None]])
    return pts, _SKIN_RINGS * len(loop_pts)


class HandRenderer:
    """Renders camera-frame hand meshes to uint8 RGB images with one reused off-screen plotter."""

    def __init__(self, faces: np.ndarray, size: int = IMAGE_SIZE, palm_weight: np.ndarray | None = None) -> None:
        """`palm_weight` (V,) in [0, 1] marks the palm side (see `palm_weights`); it gets a lighter tint."""
        import pyvista as pv

        self.size = size
        self.faces = np.asarray(faces, dtype=np.int64)
        cells = np.hstack([np.full((len(self.faces), 1), 3), self.faces]).ravel()
        n_vertices = int(self.faces.max()) + 1
        self.mesh = pv.PolyData(np.zeros((n_vertices, 3)), cells)
        self.mesh.point_data["Normals"] = np.zeros((n_vertices, 3))
        self.mesh.point_data.active_normals_name = "Normals"
        self.plotter = pv.Plotter(off_screen=True, window_size=(size, size), lighting="none")
        self.plotter.set_background("black")
        self.palm_weight = np.zeros(n_vertices) if palm_weight is None else np.asarray(palm_weight, np.float64)
        self.mesh.point_data["rgb"] = np.zeros((n_vertices, 3), dtype=np.uint8)
        self.actor = self.plotter.add_mesh(self.mesh, scalars="rgb", rgb=True, smooth_shading=False)
        # Forearm extruded from the wrist opening, coloured per vertex (skin, then an optional sleeve).
        self.loop = boundary_loop(self.faces)
        ff = forearm_faces(len(self.loop))
        n_arm = (_SKIN_RINGS + _SLEEVE_RINGS) * len(self.loop) + 1
        self.arm = pv.PolyData(np.zeros((n_arm, 3)), np.hstack([np.full((len(ff), 1), 3), ff]).ravel())
        self.arm_faces = ff
        self.arm.point_data["rgb"] = np.zeros((n_arm, 3), dtype=np.uint8)
        self.arm.point_data["Normals"] = np.zeros((n_arm, 3))
        self.arm.point_data.active_normals_name = "Normals"
        self.arm_actor = self.plotter.add_mesh(self.arm, scalars="rgb", rgb=True, smooth_shading=False)
        self.arm_actor.prop.interpolation = "phong"
        self.forearm_prob = 0.9
        self.prop = self.actor.prop
        self.prop.interpolation = "phong"
        self.key = pv.Light(light_type="camera light")
        self.fill = pv.Light(light_type="camera light")
        self.plotter.add_light(self.key)
        self.plotter.add_light(self.fill)
        self.plotter.screenshot(transparent_background=True, return_img=True)  # first render: set-up

    def set_camera(self, K: np.ndarray) -> None:
        """Make the VTK camera reproduce the OpenCV intrinsics K (square pixels; fx ≈ fy assumed)."""
        cam = self.plotter.camera
        cam.position = (0.0, 0.0, 0.0)
        cam.focal_point = (0.0, 0.0, 1.0)
        cam.up = (0.0, -1.0, 0.0)
        cam.view_angle = math.degrees(2 * math.atan(self.size / 2 / float(K[1, 1])))
        # Window centre in normalised viewport units (+x right, +y up in VTK's view).
        cx, cy = float(K[0, 2]), float(K[1, 2])
        cam.SetWindowCenter(-(cx - self.size / 2) / (self.size / 2), (cy - self.size / 2) / (self.size / 2))
        cam.clipping_range = (0.01, 10.0)

    def render(self, vertices_cam: np.ndarray, K: np.ndarray, rng: np.random.Generator,
               skin: np.ndarray | None = None, background: np.ndarray | None = None) -> np.ndarray:
        """Render one hand (V,3 camera frame, metres) → uint8 RGB (size,size,3) over a random background."""
        v = np.asarray(vertices_cam, dtype=np.float64)
        self.mesh.points = v
        normals = vertex_normals(v, self.faces)
        self.set_camera(K)
        skin = sample_skin_tone(rng) if skin is None else np.asarray(skin, dtype=np.float64)
        self.mesh.point_data["rgb"] = _to_uint8(skin_colours(skin, self.palm_weight))
        self.prop.ambient = float(rng.uniform(0.1, 0.35))
        self.prop.diffuse = float(rng.uniform(0.6, 0.95))
        self.prop.specular = float(rng.uniform(0.0, 0.25))
        self.prop.specular_power = float(rng.uniform(5, 30))
        self._update_forearm(v, normals, skin, rng)
        self.mesh.point_data["Normals"] = normals
        # Camera-light coordinates: the camera sits at (0,0,1) looking at the origin. Key light from a
        # random direction on the camera side; a weaker fill light from anywhere.
        self.key.position = (float(rng.normal(0, 0.7)), float(rng.normal(0, 0.7)), 1.0)
        self.key.intensity = float(rng.uniform(0.6, 1.1))
        self.key.diffuse_color = tuple(np.clip(1 - rng.uniform(0, 0.15, 3), 0, 1))
        self.fill.position = tuple(rng.normal(0, 1.0, 3))
        self.fill.intensity = float(rng.uniform(0.0, 0.4))
        self.plotter.render()  # screenshot() renders only the first time
        rgba = self.plotter.screenshot(transparent_background=True, return_img=True)
        fg = rgba[..., :3].astype(np.float32) / 255.0
        alpha = rgba[..., 3:].astype(np.float32) / 255.0
        self.last_alpha = alpha[..., 0]  # coverage of hand + forearm, for tests and masks
        bg = random_background(rng, self.size) if background is None else background
        img = fg * alpha + bg * (1 - alpha)
        img = img * rng.uniform(0.85, 1.15) + rng.normal(0, 0.01, img.shape)  # exposure, noise
        return camera_degrade(_to_uint8(img), rng)

    def _update_forearm(self, v: np.ndarray, normals: np.ndarray, skin: np.ndarray, rng: np.random.Generator) -> None:
        """Place the forearm (shown with probability `forearm_prob`) at the wrist with the same skin and
        material; the normals of the shared wrist ring are averaged (in place) so no seam shows."""
        arm = forearm_points(v[self.loop], v.mean(0), rng) if rng.random() < self.forearm_prob else None
        self.arm_actor.visibility = arm is not None
        if arm is None:
            return
        pts, sleeve_start = arm
        self.arm.points = pts
        arm_normals = vertex_normals(pts, self.arm_faces)
        ring = len(self.loop)
        shared = normals[self.loop] + arm_normals[:ring]
        shared /= np.maximum(np.linalg.norm(shared, axis=1, keepdims=True), 1e-12)
        normals[self.loop] = arm_normals[:ring] = shared
        self.arm.point_data["Normals"] = arm_normals
        rgb = np.empty((len(pts), 3))
        rgb[:sleeve_start] = skin
        rgb[sleeve_start:] = rng.uniform(0, 1, 3) * rng.uniform(0.3, 1.0)
        self.arm.point_data["rgb"] = _to_uint8(rgb)
        for name in ("ambient", "diffuse", "specular", "specular_power"):
            setattr(self.arm_actor.prop, name, getattr(self.prop, name))

    def close(self) -> None:
        """Release the plotter (and its GL context)."""
        self.plotter.close()
