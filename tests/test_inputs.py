"""Images and prompts as users give them: any dtype, channels, sizes; conversion properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import napari_sansa as ns
from napari_sansa.engine.inputs.images import to_rgb01
from napari_sansa.engine.inputs.prompts import (
    DensePrompt,
    SparsePrompt,
    resolve_class_prompt,
    sam_point_inputs,
    scribble_pixels,
)


def test_grayscale_is_shown_as_gray_rgb():
    image = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    rgb = to_rgb01(image)
    assert rgb.shape == (3, 4, 3)
    np.testing.assert_allclose(rgb[..., 0], image / 255)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_rgba_ignores_alpha():
    rgb = np.random.default_rng(0).integers(0, 255, (5, 6, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.zeros((5, 6, 1), np.uint8)], axis=-1)
    np.testing.assert_array_equal(to_rgb01(rgba), to_rgb01(rgb))


def test_channel_choice_and_channel_axis():
    data = np.random.default_rng(1).random((5, 20, 30)).astype(np.float32)
    chosen = to_rgb01(ns.Image(data, channel_axis=0, channels=[4, 2, 0]))
    assert chosen.shape == (20, 30, 3)
    np.testing.assert_allclose(chosen[..., 0], to_rgb01(data[4])[..., 0])
    with pytest.raises(ns.SansaError, match="do not exist"):
        to_rgb01(ns.Image(data, channel_axis=0, channels=[7]))


def test_contrast_limits_decide_black_and_white():
    image = np.array([[0, 100], [200, 4000]], np.uint16)
    rgb = to_rgb01(ns.Image(image, contrast_limits=(100, 200)))
    np.testing.assert_allclose(rgb[..., 0], [[0, 0], [1, 1]])


def test_uint16_uses_percentiles_so_dim_images_are_visible():
    image = np.random.default_rng(2).integers(100, 400, (64, 64)).astype(np.uint16)
    rgb = to_rgb01(image)
    assert rgb.min() == 0.0 and rgb.max() == 1.0


def test_nan_inf_and_constant_images_give_finite_pixels():
    image = np.array([[np.nan, 1.0], [np.inf, -np.inf]], np.float32)
    assert np.isfinite(to_rgb01(image)).all()
    assert (to_rgb01(np.full((4, 4), 7.0)) == 0).all()
    assert to_rgb01(np.ones((1, 1), bool)).shape == (1, 1, 3)


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]),
        shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=12),
    )
)
def test_any_image_maps_into_the_unit_range_or_is_refused(data):
    try:
        rgb = to_rgb01(data)
    except ns.SansaError:
        assert data.ndim == 3 and data.shape[-1] > 5
        return
    assert rgb.shape == (*data.shape[:2], 3)
    assert rgb.dtype == np.float32
    assert np.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1


@settings(max_examples=80, deadline=None)
@given(
    h=st.integers(1, 300),
    w=st.integers(1, 300),
    points=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=6),
)
def test_points_inside_the_image_land_inside_the_model_frame_in_xy(h, w, points):
    coords = np.array([[r * (h - 1), c * (w - 1)] for r, c in points])
    prompt = resolve_class_prompt(ns.Points(coords), (h, w))
    inputs = sam_point_inputs(prompt, (h, w), 1024)
    xy = inputs["point_coords"][0].numpy()
    assert xy.shape == (len(points), 2)
    np.testing.assert_allclose(xy[:, 0], coords[:, 1] * 1024 / w, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(xy[:, 1], coords[:, 0] * 1024 / h, rtol=1e-5, atol=1e-3)
    assert (xy >= 0).all() and (xy <= 1024).all()


@settings(max_examples=80, deadline=None)
@given(
    corners=st.tuples(*[st.floats(-50, 350, allow_nan=False)] * 4),
)
def test_boxes_become_ordered_corner_pairs_or_a_clear_error(corners):
    hw = (200, 300)
    try:
        prompt = resolve_class_prompt(ns.Box(*corners), hw)
    except ns.SansaError as exc:
        assert "no area" in str(exc)
        return
    (r0, c0), (r1, c1) = prompt.coords
    assert list(prompt.labels) == [2, 3]
    assert 0 <= r0 < r1 <= hw[0] - 1 and 0 <= c0 < c1 <= hw[1] - 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 99), st.integers(0, 99)), min_size=1, max_size=8))
def test_scribbles_cover_their_vertices_with_connected_unique_pixels(vertices):
    path = np.array(vertices, float)
    pixels = scribble_pixels(path)
    assert len(np.unique(pixels, axis=0)) == len(pixels)
    as_set = {tuple(p) for p in pixels}
    assert all(tuple(v) in as_set for v in vertices)
    prompt = resolve_class_prompt(ns.Scribble(path), (100, 100))
    assert isinstance(prompt, SparsePrompt) and (prompt.labels == 1).all()


def test_a_one_point_scribble_is_one_click():
    prompt = resolve_class_prompt(ns.Scribble([[5, 6]]), (10, 10))
    np.testing.assert_array_equal(prompt.coords, [[5, 6]])


def test_masks_of_one_class_are_merged_and_cannot_mix_with_clicks():
    a = np.zeros((10, 10), bool)
    a[:3] = True
    b = np.zeros((10, 10), np.uint8)
    b[-2:] = 4
    prompt = resolve_class_prompt([ns.Mask(a), ns.Mask(b)], (10, 10))
    assert isinstance(prompt, DensePrompt) and prompt.mask.sum() == 50
    with pytest.raises(ns.SansaError, match="cannot be combined"):
        resolve_class_prompt([ns.Mask(a), ns.Points([[1, 1]])], (10, 10))


def test_boxes_come_before_clicks_as_sam_expects():
    prompt = resolve_class_prompt([ns.Points([[1, 1]]), ns.Box(2, 2, 8, 8)], (10, 10))
    assert list(prompt.labels) == [2, 3, 1]


def test_point_labels_must_match_and_be_binary():
    with pytest.raises(ns.SansaError, match="2 coordinates but 1 labels"):
        resolve_class_prompt(ns.Points([[1, 1], [2, 2]], labels=[1]), (10, 10))
    with pytest.raises(ns.SansaError, match="must be 1"):
        resolve_class_prompt(ns.Points([[1, 1]], labels=[5]), (10, 10))


def test_label_files_get_the_users_umask_not_a_private_mode(tmp_path):
    """Colleagues on a shared server can read the labels when the user's umask lets them."""
    import os
    import stat

    from napari_sansa.files.images import write_labels

    old = os.umask(0o022)
    try:
        path = write_labels(tmp_path / "a_labels.png", np.ones((8, 8), np.uint8))
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o077)
        path = write_labels(tmp_path / "b_labels.tif", np.ones((8, 8), np.uint8))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old)
