"""The napari plugin: a thin layer over :mod:`napari_sansa.engine`."""
