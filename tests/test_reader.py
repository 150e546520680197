"""napari's File › Open Folder and File › Open with the plugin installed: only reference sets are ours."""

from __future__ import annotations

import numpy as np
import tifffile
import zarr


def test_a_folder_of_tiffs_and_a_zarr_open_as_without_the_plugin(make_napari_viewer, tmp_path):
    folder = tmp_path / "planes"
    folder.mkdir()
    planes = np.arange(3 * 16 * 20, dtype=np.uint16).reshape(3, 16, 20)
    for i, plane in enumerate(planes):
        tifffile.imwrite(folder / f"plane_{i}.tif", plane)
    store = zarr.open(str(tmp_path / "image.zarr"), mode="w", shape=(16, 20), dtype="uint8")
    store[:] = 7
    viewer = make_napari_viewer()
    viewer._open_or_raise_error([str(folder)])  # File › Open Folder: no MultipleReaderError
    np.testing.assert_array_equal(np.asarray(viewer.layers[-1].data), planes)
    viewer._open_or_raise_error([str(tmp_path / "image.zarr")])
    assert np.asarray(viewer.layers[-1].data).tolist() == np.full((16, 20), 7).tolist()
