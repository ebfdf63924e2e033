"""A synthetic abdominal CT cohort with the 13 BTCV labels, and its exact ground truth.

Real CT cannot be downloaded everywhere, so every notebook runs on this phantom. Each
subject is drawn from a seed: the same preset and seed always give the same scans.

How a subject is made
---------------------
1. **One canonical anatomy.** Organs, vessels, bones and body wall are simple shapes
   (ellipsoids, tubes along poly-lines, elliptic cylinders) in a *canonical* patient frame
   in mm: ``x`` to the patient's right, ``y`` anterior, ``z`` superior, the origin on the
   midline near the renal hila. Every subject shows the same anatomy.
2. **A subject is a smooth deformation of it.** Each organ (or group of organs that sit
   together) is shifted, resized and reshaped by a smooth displacement that fades out
   around it; then the frame is placed in the scanner with an anisotropic scaling (body
   size), a rotation of a few degrees, a translation of 10-20 mm, a cranio-caudal shift
   of the field of view and a smooth random nonlinear deformation. Nothing is
   pre-aligned, as in the paper. For every voxel we compute *which canonical point it
   shows* and evaluate the shapes there, so labels never need resampling.
3. **Intensities.** Each tissue has a plausible Hounsfield value and texture amplitude;
   a subject-specific contrast enhancement, a smooth intensity shift, correlated texture,
   partial-volume blur and acquisition noise are added; values are rounded to whole HU
   like a real scanner's. Bowel loops and gas differ between subjects (they do not
   correspond between patients either).

Ground truth
------------
Because every subject is one invertible map of the same anatomy, the true correspondence
between two subjects is known everywhere: voxel ``x`` of subject A shows the canonical
point ``a = M_A(x)``, which subject B shows at ``M_B^-1(a)``. :func:`true_displacement`
gives that field (in the convention of :mod:`slicreg_lite.core.spatial`), :data:`LANDMARKS`
names anatomical points (organ centres, vertebral bodies, vessel branch points) and
:func:`corresponding_landmarks` finds them in two subjects. No registration tool on real
scans has this: there, only the overlap of labels can be measured.

Examples
--------
>>> from slicreg_lite.core.config import get_config
>>> cfg = get_config("smoke")
>>> subject = generate_subject(38, cfg.phantom, cfg.grid)
>>> subject.image.shape, int(subject.labels.max())
((32, 28, 36), 13)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from ..core.config import GridConfig, PhantomConfig
from ..core.spatial import identity_grid, resize, sample
from .subject import Subject

#: Bump when the generator changes: cached cohorts of an older version are recomputed.
PHANTOM_VERSION = 3

# ------------------------------------------------------------------------------ tissues
# Tissue classes with (mean HU, texture amplitude HU, contrast enhanced?) in the portal
# venous phase. Labels and tissues are separate: a kidney has cortex and medulla, the
# stomach has wall, fluid and air, but each is one BTCV label.
TISSUES = {
    "air": (-1000, 0, False),
    "lung": (-840, 35, False),
    "fat": (-100, 14, False),
    "muscle": (50, 12, False),
    "bone_cortex": (650, 80, False),
    "bone_marrow": (230, 40, False),
    "disc": (85, 10, False),
    "csf": (15, 6, False),
    "bowel_wall": (45, 14, True),
    "bowel_content": (15, 30, False),
    "gas": (-950, 25, False),
    "heart": (130, 15, True),
    "spleen": (115, 10, True),
    "kidney_cortex": (185, 12, True),
    "kidney_medulla": (115, 12, True),
    "gallbladder": (8, 5, False),
    "esophagus": (45, 8, False),
    "liver": (105, 10, True),
    "stomach_wall": (70, 8, True),
    "stomach_content": (18, 10, False),
    "artery": (175, 8, True),
    "vein": (145, 8, True),
    "portal_vein": (165, 8, True),
    "pancreas": (90, 14, True),
    "adrenal": (55, 8, True),
}
TISSUE_INDEX = {name: i for i, name in enumerate(TISSUES)}
_HU_MEAN = np.array([v[0] for v in TISSUES.values()], dtype=np.float32)
_HU_TEXTURE = np.array([v[1] for v in TISSUES.values()], dtype=np.float32)
_ENHANCED = np.array([v[2] for v in TISSUES.values()])

# BTCV label numbers (labels.LABEL_NAMES).
SPLEEN, R_KIDNEY, L_KIDNEY, GALLBLADDER, ESOPHAGUS, LIVER, STOMACH = 1, 2, 3, 4, 5, 6, 7
AORTA, IVC, PORTAL_VEIN, PANCREAS, R_ADRENAL, L_ADRENAL = 8, 9, 10, 11, 12, 13

#: Canonical point (mm) at the centre of an unshifted field of view: a little above the
#: renal hila, so that the lower thorax and the upper pelvis are both in view.
_FOV_CENTRE = np.array([0.0, 0.0, 25.0])

# Canonical positions (mm) that the anatomy, the organ motion and the landmarks share.
_LIVER_ANCHOR = (60, 10, 115)
_STOMACH_ANCHOR = (-50, 25, 90)
_SPLEEN_CENTRE = (-102, -42, 112)
_KIDNEY_CENTRES = {1: (70, -46, 10), -1: (-70, -46, 24)}  # side: +1 right, -1 left
_PANCREAS_POINTS = [(25, 10, 25), (0, 24, 35), (-40, 14, 46), (-82, -14, 66)]
_AORTA_POINTS = [(-12, -22, -120), (-10, -22, 60), (-6, -26, 170), (-4, -30, 260)]
_IVC_POINTS = [(26, -24, -125), (22, -20, 60), (28, -10, 150), (24, -12, 178)]
_ESOPHAGUS_POINTS = [(-2, -30, 280), (-8, -24, 170), (-36, -2, 132)]
_PORTAL_POINTS = [(-86, -26, 70), (-40, 4, 48), (4, 12, 36), (36, 22, 64), (48, 16, 86)]

#: Organs move in groups: organs that sit together move together. A group's own shift,
#: size change and shape change is a displacement of the canonical frame that is whole at
#: the group's centre and fades smoothly to nothing at its reach (mm, per axis), so that a
#: subject stays one smooth, invertible map of the canonical anatomy.
_ORGAN_GROUPS = {
    "liver": (_LIVER_ANCHOR, (130, 140, 110)),
    "spleen": (_SPLEEN_CENTRE, (60, 90, 95)),
    "stomach": (_STOMACH_ANCHOR, (100, 80, 95)),
    "right_kidney": (_KIDNEY_CENTRES[1], (50, 50, 120)),
    "left_kidney": (_KIDNEY_CENTRES[-1], (50, 50, 120)),
    "pancreas": ((-24, 8, 43), (95, 50, 55)),  # with the splenic and portal vein
}

#: The vertebrae repeat every 34 mm along z; the disc is the first 7 mm of each period.
_VERTEBRA_PERIOD, _DISC_MM = 34.0, 7.0
#: The surface ripples of the canonical organs are drawn once, from this seed.
_ANATOMY_SEED = 12


def _landmarks() -> dict[str, tuple[float, float, float]]:
    """Named canonical points (mm): organ centres, vertebral bodies, vessel branches."""
    points = {
        "liver, right lobe": (72, 0, 112),
        "liver, left lobe": (-15, 48, 122),
        "spleen": _SPLEEN_CENTRE,
        "right kidney": _KIDNEY_CENTRES[1],
        "left kidney": _KIDNEY_CENTRES[-1],
        "gallbladder": (50, 62, 66),
        "stomach, fundus": (-65, 5, 122),
        "pancreas, head": _PANCREAS_POINTS[0],
        "pancreas, tail": _PANCREAS_POINTS[3],
        "aortic bifurcation": _AORTA_POINTS[0],
        "portal confluence": _PORTAL_POINTS[2],
        "splenic hilum vessels": _PORTAL_POINTS[0],
        "gastro-oesophageal junction": _ESOPHAGUS_POINTS[2],
    }
    # vertebral bodies: the centre of the bone between two discs
    for k in range(-4, 8):
        z = k * _VERTEBRA_PERIOD + (_VERTEBRA_PERIOD + _DISC_MM) / 2
        points[f"vertebral body at z={z:+.1f}"] = (0, -50, z)
    return {name: tuple(float(v) for v in p) for name, p in points.items()}


#: Anatomical landmarks in canonical mm (see :func:`corresponding_landmarks`).
LANDMARKS = _landmarks()


# --------------------------------------------------------------------------- the canvas
class _Canvas:
    """The voxel grid of one subject with the canonical position each voxel shows.

    Shapes are evaluated only inside the block of voxels that can see them
    (:meth:`region`), which keeps one subject at about a second.
    """

    def __init__(self, grid: GridConfig, pose: "_Pose"):
        self.shape = tuple(grid.shape)
        self.spacing = float(grid.spacing_mm)
        self.coords = pose.grid_coordinates()
        self.forward, self.translation = pose.forward, pose.translation
        # how far a canonical point can be from where the pose alone would put it
        self.margin = float(np.abs(pose.deformation).max()) + pose.motion.largest_mm \
            + 2 * self.spacing

        self.labels = np.zeros(self.shape, np.uint8)
        self.tissue = np.full(self.shape, TISSUE_INDEX["air"], np.uint8)

    def region(self, low, high) -> tuple[slice, slice, slice]:
        """Voxel block that contains every voxel showing the canonical box [low, high]."""
        low = np.asarray(low, float) - self.margin
        high = np.asarray(high, float) + self.margin
        corners = np.array(np.meshgrid(*zip(low, high), indexing="ij")).reshape(3, -1)
        world = self.forward @ corners + self.translation[:, None]
        index_low = world.min(1) / self.spacing + (np.array(self.shape) - 1) / 2
        index_high = world.max(1) / self.spacing + (np.array(self.shape) - 1) / 2
        return tuple(slice(int(np.clip(np.floor(a), 0, n)), int(np.clip(np.ceil(b) + 1, 0, n)))
                     for a, b, n in zip(index_low, index_high, self.shape))

    def xyz(self, region):
        return [c[region] for c in self.coords]

    def paint(self, region, mask, tissue: str, label: int | None = None, allowed=None):
        """Set tissue (and label) inside ``mask`` (a boolean array on ``region``)."""
        if allowed is not None:
            mask = mask & allowed[region]
        self.tissue[region][mask] = TISSUE_INDEX[tissue]
        if label is not None:
            self.labels[region][mask] = label


def _world_to_voxel(world: np.ndarray, grid: GridConfig) -> np.ndarray:
    """World points (3, N) in mm -> voxel coordinates of ``grid`` (centred on 0)."""
    n = np.array(grid.shape, float)[:, None]
    return world / float(grid.spacing_mm) + (n - 1) / 2


def _world_axes(grid: GridConfig) -> list[np.ndarray]:
    """World position (mm) of the voxel centres along each axis: the grid is centred on 0."""
    return [((np.arange(n) - (n - 1) / 2) * float(grid.spacing_mm)).astype(np.float32)
            for n in grid.shape]


# ------------------------------------------------------------------------------- shapes
@dataclass
class _Ellipsoid:
    centre: np.ndarray
    radii: np.ndarray
    rotation: np.ndarray  # columns: the ellipsoid's axes in canonical coordinates
    waves: np.ndarray  # (n, 5): direction (3), phase, amplitude of surface ripples

    def bounds(self):
        extent = np.abs(self.rotation) @ self.radii * 1.2
        return self.centre - extent, self.centre + extent

    def inside(self, canvas: _Canvas, region, scale: float = 1.0):
        x, y, z = canvas.xyz(region)
        d = [x - self.centre[0], y - self.centre[1], z - self.centre[2]]
        r2 = 0.0
        for axis in range(3):
            local = (self.rotation[0, axis] * d[0] + self.rotation[1, axis] * d[1]
                     + self.rotation[2, axis] * d[2]) / (self.radii[axis] * scale)
            r2 = r2 + local * local
        return r2 < 1.0 + _ripples(d, self.waves, self.radii)


def _ripples(d, waves, radii):
    """Smooth bumps on a surface: the sum of a few sine waves of organ-sized wavelength."""
    total = 0.0
    size = float(np.mean(radii))
    for dx, dy, dz, phase, amplitude in waves:
        total = total + amplitude * np.sin((dx * d[0] + dy * d[1] + dz * d[2]) / size + phase)
    return total


@dataclass
class _Tube:
    points: np.ndarray  # (n, 3) poly-line
    radii: np.ndarray  # (n,) radius at each point, linear in between

    def bounds(self):
        r = self.radii.max()
        return self.points.min(0) - r, self.points.max(0) + r

    def inside(self, canvas: _Canvas, region):
        x, y, z = canvas.xyz(region)
        mask = np.zeros(x.shape, bool)
        for a, b, ra, rb in zip(self.points[:-1], self.points[1:], self.radii[:-1],
                                self.radii[1:]):
            ab = b - a
            t = ((x - a[0]) * ab[0] + (y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / (ab @ ab)
            t = np.clip(t, 0.0, 1.0)
            dist2 = (x - a[0] - t * ab[0]) ** 2 + (y - a[1] - t * ab[1]) ** 2 \
                + (z - a[2] - t * ab[2]) ** 2
            radius = ra + t * (rb - ra)
            mask |= dist2 < radius * radius
        return mask


def _rotation(rx: float = 0.0, ry: float = 0.0, rz: float = 0.0) -> np.ndarray:
    """Rotation matrix from angles in degrees about x, then y, then z."""
    ax, ay, az = np.deg2rad([rx, ry, rz])
    Rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    Ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    Rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


class _Shapes:
    """Makes the canonical anatomy's shapes.

    The surface ripples of the ellipsoids are drawn from one fixed seed, in the same order
    for every subject, so every subject shows the same organs.
    """

    def __init__(self):
        self.rng = np.random.default_rng(_ANATOMY_SEED)

    def ellipsoid(self, centre, radii, rotation=None, ripple: float = 0.12) -> _Ellipsoid:
        directions = self.rng.normal(size=(3, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        waves = np.column_stack([directions * 2.0, self.rng.uniform(0, 2 * np.pi, 3),
                                 self.rng.uniform(0, ripple, 3)])
        return _Ellipsoid(np.asarray(centre, float), np.asarray(radii, float),
                          np.eye(3) if rotation is None else rotation, waves)

    @staticmethod
    def tube(points, radii) -> _Tube:
        return _Tube(np.asarray(points, float), np.asarray(radii, float))


class _OrganMotion:
    """One subject's organ shifts, size and shape changes: a smooth displacement of the
    canonical frame.

    For each group of :data:`_ORGAN_GROUPS`, a canonical point ``c`` moves by
    ``w(q) * (shift + (1 / size - 1) * (c - centre) + waves(c))``, where ``q`` is the
    distance from the group's centre in units of its reach and ``w(q) = (1 - q^2)^3``
    (1 at the centre, 0 from the reach on, smooth in between). The displacement is small
    and slowly varying (its Jacobian stays far from folding), so the map stays invertible:
    that is what makes the ground truth exact.
    """

    def __init__(self, cfg: PhantomConfig, rng: np.random.Generator):
        self.groups = []
        for centre, reach in _ORGAN_GROUPS.values():
            shift = np.clip(rng.normal(0, cfg.organ_shift_mm, 3), -2 * cfg.organ_shift_mm,
                            2 * cfg.organ_shift_mm)
            size = (1 + np.clip(rng.normal(0, cfg.organ_scale_jitter), -0.2, 0.2)) \
                * (1 + np.clip(rng.normal(0, 0.04, 3), -0.08, 0.08))
            directions = rng.normal(size=(3, 3))
            directions /= np.linalg.norm(directions, axis=1, keepdims=True)
            waves = {"vector": directions * 3.0 / np.mean(reach),
                     "phase": rng.uniform(0, 2 * np.pi, 3),
                     "amplitude": rng.normal(0, cfg.organ_shape_mm, (3, 3))}
            self.groups.append((np.asarray(centre, np.float32), np.asarray(reach, np.float32),
                                shift.astype(np.float32), (1 / size - 1).astype(np.float32),
                                waves))
        # the most any point moves (bounds of the terms; for the canvas' search margin)
        self.largest_mm = max(float(np.linalg.norm(shift) + np.abs(stretch) @ reach
                                    + np.abs(waves["amplitude"]).sum())
                              for _, reach, shift, stretch, waves in self.groups)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """The displacement (mm) at canonical points ``points`` (3, N): an array (3, N)."""
        points = np.asarray(points, np.float32)
        moved = np.zeros_like(points)
        for centre, reach, shift, stretch, waves in self.groups:
            offset = points - centre[:, None]
            q2 = ((offset / reach[:, None]) ** 2).sum(0)
            near = np.flatnonzero(q2 < 1)  # the weight is exactly 0 beyond the reach
            if near.size == 0:
                continue
            local = offset[:, near]
            weight = (1 - q2[near]) ** 3
            step = shift[:, None] + stretch[:, None] * local
            angles = waves["vector"] @ local + waves["phase"][:, None]  # (3 waves, n)
            step += waves["amplitude"].T @ np.sin(angles)
            moved[:, near] += weight * step
        return moved


# ------------------------------------------------------------------------------ anatomy
def _body_wall(canvas: _Canvas, fat_mm: float = 20.0, muscle_mm: float = 10.0):
    """Skin outline, subcutaneous fat, muscle wall; returns the abdominal cavity mask.

    Subjects differ in body size and shape through their pose (scaling) and deformation.
    """
    x, y, z = canvas.coords
    half_width = 157.0 + 0.04 * z  # a little wider towards the thorax
    half_depth = 112.0
    outer = (x / half_width) ** 2 + (y / half_depth) ** 2
    muscle_in = (x / (half_width - fat_mm)) ** 2 + (y / (half_depth - fat_mm)) ** 2
    cavity_in = (x / (half_width - fat_mm - muscle_mm)) ** 2 \
        + (y / (half_depth - fat_mm - muscle_mm)) ** 2
    whole = (slice(None),) * 3
    body = outer < 1
    canvas.paint(whole, body, "fat")
    canvas.paint(whole, muscle_in < 1, "muscle")
    cavity = cavity_in < 1
    canvas.paint(whole, cavity, "fat")
    # ribs: oblique bands just inside the muscle wall of the upper abdomen and thorax,
    # open at the front (costal cartilage is not drawn)
    ring = (cavity_in > 0.80) & cavity & (z > 25 + 0.5 * y) & ~((np.abs(x) < 45) & (y > 0))
    ribs = ring & (np.cos(2 * np.pi * (z + 0.35 * y) / 38.0) > 0.45)
    canvas.paint(whole, ribs, "bone_cortex")
    return body, cavity & ~ribs, cavity_in


def _spine_and_muscles(canvas: _Canvas):
    """Vertebrae with discs and canal, paraspinal and psoas muscles, iliac bones."""
    whole = (slice(None),) * 3
    x, y, z = canvas.coords
    level = np.mod(z, _VERTEBRA_PERIOD)  # position within one vertebra + disc
    in_disc = level < _DISC_MM
    body_r = (x / 22.0) ** 2 + ((y + 50) / 17.0) ** 2
    canvas.paint(whole, body_r < 1, "bone_marrow")
    canvas.paint(whole, (body_r < 1) & (body_r > 0.72) & ~in_disc, "bone_cortex")
    canvas.paint(whole, (body_r < 1) & in_disc, "disc")
    canal_r = np.sqrt(x ** 2 + (y + 80) ** 2)
    arch = (canal_r < 16) & (canal_r > 9) & (y < -72) & ~in_disc
    spinous = (np.abs(x) < 4) & (y < -90) & (y > -104) & ~in_disc
    transverse = (np.abs(y + 70) < 5) & (np.abs(x) < 48) & (np.abs(x) > 14) & ~in_disc \
        & (level > 12)
    canvas.paint(whole, arch | spinous | transverse, "bone_cortex")
    canvas.paint(whole, canal_r < 9, "csf")
    for side in (-1, 1):
        para = ((x - side * 38) / 24.0) ** 2 + ((y + 84) / 19.0) ** 2 < 1
        canvas.paint(whole, para & ~(arch | spinous | transverse), "muscle")
        psoas = _Tube(np.array([[side * 32, -45, 35], [side * 48, -40, -60],
                                [side * 62, -30, -240]]), np.array([6.0, 18.0, 24.0]))
        region = canvas.region(*psoas.bounds())
        canvas.paint(region, psoas.inside(canvas, region), "muscle")
        # iliac wing: a curved bony plate at the bottom of the field of view
        wing = _Ellipsoid(np.array([side * 100, -30, -215]), np.array([30, 62, 70]),
                          np.eye(3), np.zeros((0, 5)))
        region = canvas.region(*wing.bounds())
        outer = wing.inside(canvas, region)
        inner = wing.inside(canvas, region, scale=0.8)
        canvas.paint(region, outer, "bone_cortex")
        canvas.paint(region, inner, "bone_marrow")
    return (canvas.tissue == TISSUE_INDEX["bone_cortex"]) | \
        (canvas.tissue == TISSUE_INDEX["bone_marrow"])


def _bowel(canvas: _Canvas, cavity, rng: np.random.Generator):
    """Small bowel loops and colon with gas pockets: texture of the lower abdomen."""
    x, y, z = canvas.coords
    loops = _smooth_noise(canvas.shape, 9.0 / canvas.spacing, rng)
    pockets = _smooth_noise(canvas.shape, 6.0 / canvas.spacing, rng)
    lower = cavity & (z < 55 - 0.3 * np.abs(x)) & (y > -70)
    whole = (slice(None),) * 3
    canvas.paint(whole, lower & (loops > -0.2), "bowel_wall")
    canvas.paint(whole, lower & (loops > 0.35), "bowel_content")
    canvas.paint(whole, lower & (loops > 0.35) & (pockets > 1.3), "gas")
    # colon: a frame around the small bowel, partly filled with gas
    colon = _Tube(np.array([[92, -15, -150], [95, -5, 5], [85, 35, 25], [0, 55, 10],
                            [-85, 35, 35], [-95, -5, 15], [-92, -15, -150]], float),
                  np.full(7, 22.0))
    colon.points += rng.normal(0, 6.0, colon.points.shape)
    region = canvas.region(*colon.bounds())
    inside = colon.inside(canvas, region) & cavity[region]
    canvas.paint(region, inside, "bowel_content")
    canvas.paint(region, inside & (pockets[region] > 0.5), "gas")


def _organs(canvas: _Canvas, allowed):
    """The 13 BTCV organs, painted in an order that decides who wins where they touch."""
    S = _Shapes()

    def draw(shape, tissue, label):
        region = canvas.region(*shape.bounds())
        mask = shape.inside(canvas, region)
        canvas.paint(region, mask, tissue, label, allowed)
        return region, mask

    # stomach: fundus under the left diaphragm, body and antrum curving to the pylorus
    fundus = S.ellipsoid((-65, 5, 122), (38, 40, 44))
    body = S.tube([(-66, 12, 112), (-48, 38, 66), (0, 50, 46), (25, 36, 52)],
                  [30, 26, 18, 12])
    inner = _Tube(body.points, body.radii - 5)
    for shape in (fundus, body):
        draw(shape, "stomach_wall", STOMACH)
    for shape in (_Ellipsoid(fundus.centre, fundus.radii - 5, fundus.rotation, fundus.waves),
                  inner):
        region = canvas.region(*shape.bounds())
        mask = shape.inside(canvas, region)
        canvas.paint(region, mask, "stomach_content", STOMACH, allowed)
        # supine patient: swallowed air rises to the anterior part of the stomach
        air = mask & (canvas.coords[1][region] > fundus.centre[1] + 8)
        canvas.paint(region, air, "gas", STOMACH, allowed)

    # liver: right lobe under the right diaphragm, left lobe in front of the stomach
    draw(S.ellipsoid((72, 0, 112), (72, 92, 62), _rotation(rz=-10)), "liver", LIVER)
    draw(S.ellipsoid((-15, 48, 122), (58, 34, 38), _rotation(ry=12)), "liver", LIVER)
    draw(S.ellipsoid((55, 45, 80), (40, 35, 32)), "liver", LIVER)
    draw(S.ellipsoid((50, 62, 66), (14, 15, 30), _rotation(rx=-35, ry=15), ripple=0.05),
         "gallbladder", GALLBLADDER)

    # spleen: a crescent high in the left upper quadrant, concave towards the hilum
    spleen = S.ellipsoid(_SPLEEN_CENTRE, (26, 52, 54), _rotation(rx=25, rz=20))
    region, mask = draw(spleen, "spleen", SPLEEN)
    hilum = _Ellipsoid(spleen.centre + (28, 14, 0), spleen.radii * (0.8, 0.7, 0.7),
                       spleen.rotation, spleen.waves[:0])
    canvas.paint(region, mask & hilum.inside(canvas, region), "fat", 0, allowed)

    # kidneys: cortex brighter than medulla; sinus fat at the medial hilum
    for side, label, tissue_rz in ((1, R_KIDNEY, 15), (-1, L_KIDNEY, -15)):
        z0 = _KIDNEY_CENTRES[side][2]
        kidney = S.ellipsoid(_KIDNEY_CENTRES[side], (26, 24, 54),
                             _rotation(ry=side * -12, rz=tissue_rz), ripple=0.06)
        region, mask = draw(kidney, "kidney_cortex", label)
        medulla = kidney.inside(canvas, region, scale=0.72) & mask
        canvas.paint(region, medulla, "kidney_medulla", label, allowed)
        sinus = _Ellipsoid(kidney.centre + (-side * 20, 8, 0), kidney.radii * (0.45, 0.5, 0.45),
                           kidney.rotation, kidney.waves[:0])
        canvas.paint(region, mask & sinus.inside(canvas, region), "fat", 0, allowed)
        # adrenal gland: a thin plate on the upper pole, moving with its kidney
        adrenal = S.ellipsoid((side * 42, -30 - (side < 0) * 6, z0 + 64), (5, 13, 17),
                              _rotation(rz=side * 30), ripple=0.05)
        draw(adrenal, "adrenal", R_ADRENAL if side > 0 else L_ADRENAL)

    # pancreas: head in the duodenal sweep, body across the spine, tail at the splenic hilum
    draw(S.tube(_PANCREAS_POINTS, [19, 14, 13, 11]), "pancreas", PANCREAS)

    # vessels last: they run through and along the organs
    draw(S.tube(_AORTA_POINTS, [10, 11, 12, 12]), "artery", AORTA)
    draw(S.tube(_IVC_POINTS, [11, 12, 13, 12]), "vein", IVC)
    draw(S.tube(_ESOPHAGUS_POINTS, [7, 7, 8]), "esophagus", ESOPHAGUS)
    draw(S.tube(_PORTAL_POINTS, [5, 5, 7, 7, 6]), "portal_vein", PORTAL_VEIN)
    # unlabelled vessels give texture: iliac arteries and veins below the bifurcation
    for side in (-1, 1):
        iliac = _Tube(np.array([(-12, -22, -118), (side * 55, -15, -240)]), np.array([7.0, 7.0]))
        region = canvas.region(*iliac.bounds())
        canvas.paint(region, iliac.inside(canvas, region), "artery", None, allowed)


def _thorax(canvas: _Canvas, cavity):
    """Lungs above the diaphragm and the bottom of the heart, where no organ is."""
    x, y, z = canvas.coords
    dome = 168 + 0.004 * (np.abs(x) - 80) ** 2 + 0.25 * y
    free = cavity & (canvas.labels == 0) & (z > dome) \
        & (canvas.tissue != TISSUE_INDEX["bone_cortex"]) \
        & (canvas.tissue != TISSUE_INDEX["bone_marrow"])
    whole = (slice(None),) * 3
    canvas.paint(whole, free, "lung")
    heart = _Ellipsoid(np.array([-25, 40, 245]), np.array([72, 55, 55]), np.eye(3),
                       np.zeros((0, 5)))
    region = canvas.region(*heart.bounds())
    canvas.paint(region, heart.inside(canvas, region) & free[region], "heart")


# ------------------------------------------------------------------------------- noise
def _smooth_noise(shape, sigma_voxels: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-correlated noise with unit standard deviation.

    Wide smoothing is done on a coarser grid and upsampled: same look, a fraction of the
    time.
    """
    factor = max(1, int(sigma_voxels // 2))
    coarse = tuple(-(-n // factor) + 1 for n in shape)
    field = gaussian_filter(rng.standard_normal(coarse, dtype=np.float32),
                            sigma_voxels / factor, mode="wrap")
    field = resize(field, shape) if factor > 1 else field[:shape[0], :shape[1], :shape[2]]
    return (field - field.mean()) / (field.std() + 1e-6)


def _smooth_field(shape, spacing_mm: float, control_mm: float, std: float,
                  rng: np.random.Generator, channels: int = 3) -> np.ndarray:
    """A smooth random field (e.g. a deformation in mm) from a coarse control grid."""
    extent = np.array(shape) * spacing_mm
    coarse = tuple(int(np.ceil(e / control_mm)) + 2 for e in extent)
    grid = rng.normal(0, 1, (channels, *coarse)).astype(np.float32)
    grid = gaussian_filter(grid, (0, 0.7, 0.7, 0.7), mode="nearest")
    grid *= std / (grid.std(axis=(1, 2, 3), keepdims=True) + 1e-6)
    return resize(grid, shape)


# ------------------------------------------------------------------------------ subject
def generate_subject(subject_id: int, cfg: PhantomConfig, grid: GridConfig) -> Subject:
    """One synthetic abdominal CT scan with its 13 organ labels and body mask.

    Parameters
    ----------
    subject_id : int
        Any non-negative integer; the cohort uses the BCV ids 1..10 and 21..40.
    cfg : PhantomConfig
        Amounts of variability (``get_config(preset).phantom``).
    grid : GridConfig
        The voxel grid to draw the scan on (``get_config(preset).grid``).

    Returns
    -------
    Subject
        ``image`` in HU (float32, whole numbers), ``labels`` (uint8, 0..13),
        ``body_mask`` (bool) and the NIfTI ``affine`` (RAS+, mm, centred on the field of
        view).
    """
    _check_arguments(cfg, grid, subject_id)
    pose = _draw_pose(subject_id, cfg, grid)
    rng = pose.rng
    canvas = _Canvas(grid, pose)

    # anatomy, from the outside in; later painting wins
    body, cavity, _ = _body_wall(canvas)
    bone = _spine_and_muscles(canvas)
    allowed = cavity & ~bone
    _bowel(canvas, allowed, rng)
    _organs(canvas, allowed)
    _thorax(canvas, cavity)

    image = _intensities(canvas, cfg, rng)
    n = np.array(grid.shape)
    affine = np.diag([grid.spacing_mm] * 3 + [1.0])
    affine[:3, 3] = -(n - 1) / 2 * grid.spacing_mm
    return Subject(int(subject_id), image, canvas.labels, affine, body_mask=body)


def _check_arguments(cfg, grid, *subject_ids) -> None:
    if not isinstance(cfg, PhantomConfig):
        raise TypeError(f"cfg must be a PhantomConfig (get_config(...).phantom); "
                        f"got {type(cfg).__name__}")
    if not isinstance(grid, GridConfig):
        raise TypeError(f"grid must be a GridConfig (get_config(...).grid); "
                        f"got {type(grid).__name__}")
    for subject_id in subject_ids:
        if isinstance(subject_id, bool) or not isinstance(subject_id, (int, np.integer)) \
                or subject_id < 0:
            raise ValueError(f"subject_id must be a non-negative integer; got {subject_id!r}")
    if len(grid.shape) != 3 or min(grid.shape) < 8:
        raise ValueError(f"grid.shape must be three sizes of at least 8 voxels; "
                         f"got {grid.shape}")


@dataclass
class _Pose:
    """Where one subject's canonical anatomy is: organ motion, then pose and deformation.

    The canonical point shown at world position ``w`` (mm) is
    ``c = forward^-1 (w - translation) + deformation(w)``, moved by the organ motion:
    ``a = c + motion(c)``. Both steps are smooth and invertible.
    """

    rng: np.random.Generator  # continues with the subject's other draws
    forward: np.ndarray  # 3 x 3: rotation @ scaling, canonical -> world
    translation: np.ndarray  # mm
    deformation: np.ndarray  # (3, D, H, W) mm on the grid, added to the canonical point
    motion: _OrganMotion
    grid: GridConfig

    def grid_coordinates(self) -> list[np.ndarray]:
        """The canonical point (mm) every voxel shows: three float32 arrays of the grid."""
        grid = self.grid
        axes = _world_axes(grid)
        inverse = np.linalg.inv(self.forward).astype(np.float32)
        t = np.asarray(self.translation).astype(np.float32)
        coords = []
        for row in range(3):
            c = (inverse[row, 0] * (axes[0] - t[0]))[:, None, None] \
                + (inverse[row, 1] * (axes[1] - t[1]))[None, :, None] \
                + (inverse[row, 2] * (axes[2] - t[2]))[None, None, :]
            coords.append((c + self.deformation[row]).astype(np.float32))
        moved = self.motion(np.stack(coords).reshape(3, -1)).reshape(3, *grid.shape)
        return [c + m for c, m in zip(coords, moved)]

    def _deformation_at(self, world: np.ndarray) -> np.ndarray:
        """The deformation (mm) at world points (3, N), trilinear between voxel centres."""

        # beyond the grid the deformation keeps its border value
        return sample(self.deformation, _world_to_voxel(world, self.grid),
                      padding="border").astype(np.float64)

    def canonical_at(self, world: np.ndarray) -> np.ndarray:
        """The canonical point (mm) shown at world points ``world`` (3, N)."""
        world = np.asarray(world, np.float64)
        inverse = np.linalg.inv(self.forward)
        c = inverse @ (world - self.translation[:, None]) + self._deformation_at(world)
        return c + self.motion(c)

    def world_of(self, canonical: np.ndarray, tolerance_mm: float = 1e-4,
                 max_iterations: int = 200) -> np.ndarray:
        """Where (world mm) this subject shows the canonical points ``canonical`` (3, N).

        Inverts the two steps by fixed-point iteration (both are contractions: their
        displacements change much more slowly than 1 mm per mm).

        Raises
        ------
        RuntimeError
            If the iteration does not reach ``tolerance_mm``.
        """
        target = np.asarray(canonical, np.float64)
        c = target.copy()  # undo the organ motion: c + motion(c) = target
        for _ in range(max_iterations):
            step = target - self.motion(c) - c
            c += step
            if np.abs(step).max() < tolerance_mm:
                break
        world = self.forward @ c + self.translation[:, None]  # undo pose and deformation
        for _ in range(max_iterations):
            new = self.forward @ (c - self._deformation_at(world)) + self.translation[:, None]
            step, world = new - world, new
            if np.abs(step).max() < tolerance_mm:
                break
        residual = np.abs(self.canonical_at(world) - target).max()
        if residual > 100 * tolerance_mm:
            raise RuntimeError(f"the phantom's map did not invert (residual {residual:.2g} "
                               "mm): is the deformation too strong for this grid?")
        return world


def _draw_pose(subject_id: int, cfg: PhantomConfig, grid: GridConfig) -> _Pose:
    """Organ motion, pose, body shape and deformation of a subject (no anatomy painted)."""
    rng = np.random.default_rng([cfg.seed, int(subject_id)])
    # pose and body shape: nothing is pre-aligned
    low, high = cfg.scale_range
    scale = rng.uniform(low, high, 3)
    angles = np.clip(rng.normal(0, cfg.rotation_deg, 3), -2 * cfg.rotation_deg,
                     2 * cfg.rotation_deg)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    translation = direction * rng.uniform(*cfg.translation_mm)
    translation[2] += rng.uniform(-cfg.fov_shift_mm, cfg.fov_shift_mm)
    forward = _rotation(*angles) @ np.diag(scale)
    translation -= forward @ _FOV_CENTRE  # the field of view is centred on _FOV_CENTRE
    deformation = _smooth_field(grid.shape, grid.spacing_mm, cfg.deformation_spacing_mm,
                                cfg.deformation_mm, rng)
    return _Pose(rng, forward, translation, deformation, _OrganMotion(cfg, rng), grid)


# ------------------------------------------------------------------------- ground truth
def true_displacement(fixed_id: int, moving_id: int, cfg: PhantomConfig,
                      grid: GridConfig) -> np.ndarray:
    """The exact correspondence between two phantom subjects, as a displacement field.

    Voxel ``x`` of the fixed subject shows the same canonical point as position
    ``x + u(x)`` (in voxels) of the moving subject: the convention of every field in
    this package (:mod:`slicreg_lite.core.spatial`), so ``warp_labels(moving.labels, u)``
    carries the moving labels onto the fixed scan.

    Parameters
    ----------
    fixed_id, moving_id : int
        Subject ids of the cohort ``cfg`` (e.g. the template and a test subject).
    cfg : PhantomConfig
    grid : GridConfig

    Returns
    -------
    numpy.ndarray of float32, shape (3, D, H, W)
        In voxels of ``grid``. Defined everywhere, also where the corresponding point
        lies outside the moving scan's field of view.
    """
    _check_arguments(cfg, grid, fixed_id, moving_id)
    fixed, moving = _draw_pose(fixed_id, cfg, grid), _draw_pose(moving_id, cfg, grid)
    canonical = np.stack(fixed.grid_coordinates()).reshape(3, -1)
    target = _world_to_voxel(moving.world_of(canonical), grid).reshape(3, *grid.shape)
    return (target - identity_grid(grid.shape, np.float64)).astype(np.float32)


def landmark_positions(subject_id: int, cfg: PhantomConfig, grid: GridConfig,
                       names=None) -> dict[str, np.ndarray]:
    """Where a subject shows the :data:`LANDMARKS`, in voxel coordinates of ``grid``.

    A landmark may lie outside the field of view (coordinates below 0 or above the
    grid's size - 1): the field of view moves between subjects.
    """
    _check_arguments(cfg, grid, subject_id)
    names = list(LANDMARKS) if names is None else list(names)
    unknown = [n for n in names if n not in LANDMARKS]
    if unknown:
        raise ValueError(f"unknown landmark(s) {unknown}; expected some of {list(LANDMARKS)}")
    canonical = np.array([LANDMARKS[n] for n in names], float).T
    voxels = _world_to_voxel(_draw_pose(subject_id, cfg, grid).world_of(canonical), grid)
    return {name: voxels[:, i] for i, name in enumerate(names)}


@dataclass
class GroundTruth:
    """The exact correspondence between a fixed and a moving phantom subject.

    Attributes
    ----------
    displacement : numpy.ndarray of float32, shape (3, D, H, W)
        The true field (:func:`true_displacement`).
    landmark_names : list of str
        The landmarks inside both fields of view.
    fixed_points, moving_points : numpy.ndarray, shape (N, 3)
        Their voxel coordinates in the fixed and the moving subject.
    """

    displacement: np.ndarray
    landmark_names: list
    fixed_points: np.ndarray
    moving_points: np.ndarray

    @property
    def visible(self) -> np.ndarray:
        """Fixed voxels whose true partner lies inside the moving scan's field of view
        (bool, shape (D, H, W)): elsewhere no registration can see where they went."""
        shape = self.displacement.shape[1:]
        voxels = identity_grid(shape) + self.displacement
        top = (np.array(shape) - 1)[:, None, None, None]
        return np.all((voxels >= 0) & (voxels <= top), axis=0)


def ground_truth(fixed_id: int, moving_id: int, cfg: PhantomConfig,
                 grid: GridConfig) -> GroundTruth:
    """The true field and the corresponding landmarks of two phantom subjects."""
    names, fixed, moving = corresponding_landmarks(fixed_id, moving_id, cfg, grid)
    return GroundTruth(true_displacement(fixed_id, moving_id, cfg, grid), names, fixed,
                       moving)


def corresponding_landmarks(fixed_id: int, moving_id: int, cfg: PhantomConfig,
                            grid: GridConfig) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The landmarks seen by both subjects: names, fixed and moving voxel coordinates.

    Returns
    -------
    names : list of str
    fixed, moving : numpy.ndarray, shape (N, 3)
        Voxel coordinates (float) in the fixed and the moving subject; only landmarks
        inside both fields of view.
    """
    fixed = landmark_positions(fixed_id, cfg, grid)
    moving = landmark_positions(moving_id, cfg, grid)
    size = np.array(grid.shape) - 1

    def inside(p):
        return bool(np.all(p >= 0) and np.all(p <= size))

    names = [n for n in LANDMARKS if inside(fixed[n]) and inside(moving[n])]
    return (names, np.array([fixed[n] for n in names]).reshape(-1, 3),
            np.array([moving[n] for n in names]).reshape(-1, 3))


def _intensities(canvas: _Canvas, cfg: PhantomConfig, rng: np.random.Generator) -> np.ndarray:
    """Hounsfield units from the tissue map: texture, contrast, blur, noise."""
    enhancement = rng.uniform(0.75, 1.25)  # how much contrast agent this subject got
    offset = rng.normal(0, 8)
    mean = _HU_MEAN.copy()
    mean[_ENHANCED] = 40 + (mean[_ENHANCED] - 40) * enhancement
    texture = _smooth_noise(canvas.shape, 3.0 / canvas.spacing, rng)
    image = mean[canvas.tissue] + _HU_TEXTURE[canvas.tissue] * texture
    body = canvas.tissue != TISSUE_INDEX["air"]
    shift = _smooth_field(canvas.shape, canvas.spacing, 100.0, cfg.contrast_shift_hu, rng,
                          channels=1)[0]
    image += body * (shift + offset)
    # partial-volume blur of about 1 mm, then acquisition noise
    image = gaussian_filter(image, max(0.35, 1.0 / canvas.spacing))
    image += rng.standard_normal(canvas.shape, dtype=np.float32) * cfg.noise_hu
    return np.round(np.clip(image, -1024, 3071)).astype(np.float32)

