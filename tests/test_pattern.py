"""Printed patterns (dataset.render.pattern): fixed to the surface, the geometry untouched, matchable."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from stereo_occ.config import RenderConfig, RigConfig
from stereo_occ.data.pattern import draw_pattern
from stereo_occ.data.render import StereoRenderer
from stereo_occ.data.rig import LEFT, RIGHT, project

BLOTCHES = RenderConfig(pattern="blotches")


@pytest.fixture(scope="module")
def renderer():
    with StereoRenderer(RigConfig(image_size=64, fov_deg=46.0, object_radius=0.75), RenderConfig()) as r:
        yield r


def test_plain_renders_draw_no_pattern():
    assert draw_pattern(RenderConfig(), np.random.default_rng(0)) is None


def test_a_pattern_is_its_seed_and_stays_in_its_contrast():
    a = draw_pattern(BLOTCHES, np.random.default_rng(3))
    b = draw_pattern(BLOTCHES, np.random.default_rng(3))
    c = draw_pattern(BLOTCHES, np.random.default_rng(4))
    points = np.random.default_rng(0).uniform(-0.5, 0.5, size=(20_000, 3))
    np.testing.assert_array_equal(a.shade(points), b.shade(points))
    assert not np.allclose(a.shade(points), c.shade(points))
    shade = a.shade(points)
    assert BLOTCHES.pattern_contrast[0] <= a.contrast <= BLOTCHES.pattern_contrast[1]
    assert shade.min() >= 1 - a.contrast - 1e-9 and shade.max() <= 1
    # blotches: both light and dark parts cover a good share of the surface
    middle = 1 - a.contrast / 2
    assert 0.25 < (shade < middle).mean() < 0.75


def test_the_pattern_varies_at_its_wavelengths():
    """Shades at points a small fraction of the shortest wavelength apart agree; at the longest apart they do not."""
    pattern = draw_pattern(BLOTCHES, np.random.default_rng(1))
    points = np.random.default_rng(2).uniform(-0.5, 0.5, size=(20_000, 3))
    step = np.random.default_rng(3).normal(size=(20_000, 3))
    step /= np.linalg.norm(step, axis=1, keepdims=True)
    near = np.abs(pattern.shade(points) - pattern.shade(points + 0.005 * step)).mean()
    far = np.abs(pattern.shade(points) - pattern.shade(points + 0.3 * step)).mean()
    assert near < 0.2 * far


def test_a_pattern_changes_the_images_not_the_depth(renderer):
    mesh = trimesh.creation.annulus(r_min=0.3, r_max=0.45, height=0.8)
    pattern = draw_pattern(BLOTCHES, np.random.default_rng(0))
    rotation = trimesh.transformations.rotation_matrix(0.7, [1, 0.3, 0])[:3, :3]
    plain = renderer.render(mesh, rotation, np.random.default_rng(5))
    printed = renderer.render(mesh, rotation, np.random.default_rng(5), pattern)
    for k in (2, 3):  # depth maps: the geometry is the plain object's
        np.testing.assert_array_equal(printed[k], plain[k])
    np.testing.assert_array_equal(printed[4], plain[4])  # the same lighting drawn
    on_object = plain[2] > 0
    difference = np.abs(printed[0].astype(float) - plain[0].astype(float)).mean(-1)
    assert difference[on_object].mean() > 10  # the blotches darken the material
    assert difference[~on_object].max() == 0  # and nothing else
    assert (printed[0][on_object] <= plain[0][on_object]).all()  # a print only darkens
    # the plain object is drawn again as before once the pattern is gone
    again = renderer.render(mesh, rotation, np.random.default_rng(5))
    np.testing.assert_array_equal(again[0], plain[0])


def test_the_pattern_is_fixed_to_the_surface_in_both_views(renderer):
    """A surface point seen by both cameras shows the same printed shade in both: what a matcher needs.

    The object is lit by ambient light only (no directional light, no specular highlight) so that
    the image is the pattern times a constant colour. Visible surface points of a turned sphere are
    projected into both images with the stored cameras: their pixels are light or dark where the
    pattern, in the object's own frame, is light or dark, and the two views agree.
    """
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.45)
    pattern = draw_pattern(RenderConfig(pattern="blotches", pattern_contrast=[0.8, 0.8]), np.random.default_rng(7))
    flat = RenderConfig(light_intensity=[0.0, 0.0], ambient=[1.0, 1.0], saturation=[0.0, 0.0], value=[0.9, 0.9],
                        metallic=[0.0, 0.0])
    with StereoRenderer(RigConfig(image_size=64, fov_deg=46.0, object_radius=0.75), flat) as r:
        rotation = trimesh.transformations.rotation_matrix(2.0, [0.2, 1.0, 0.5])[:3, :3]
        left, right, _, _, _ = r.render(sphere, rotation, np.random.default_rng(0), pattern)
    rig = r.rig
    # points on the sphere facing both cameras (the rig frame's +z is towards them)
    directions = np.random.default_rng(1).normal(size=(4000, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    points = 0.45 * directions[directions[:, 2] > 0.6]
    pixels = []
    for cam, image in ((LEFT, left), (RIGHT, right)):
        uv, _ = project(points, rig.K, rig.world_to_cam[cam])
        cols, rows = np.round(uv).astype(int).T
        pixels.append(image[rows, cols].mean(-1))
    shade = pattern.shade(points @ rotation)  # the object frame: p_obj = R^T p_rig
    light, dark = shade > np.quantile(shade, 0.7), shade < np.quantile(shade, 0.3)
    for values in pixels:  # each view shows the pattern where the object's surface carries it
        assert values[light].mean() - values[dark].mean() > 40
    agree = np.abs(pixels[0] - pixels[1])
    assert np.median(agree) < 10  # and both views show the same shade at the same surface point
