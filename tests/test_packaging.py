"""What napari, the napari hub and PyPI read: the manifest, the hub's files, the package metadata."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest's own dependency there
    import tomli as tomllib

ROOT = Path(__file__).parents[1]
MANIFEST = ROOT / "src" / "napari_sansa" / "napari.yaml"


def test_npe2_validates_the_manifest_and_imports_every_command():
    done = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "--imports", "napari-sansa"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "valid" in done.stdout, done.stdout + done.stderr


def test_the_labels_writer_only_takes_what_napari_cannot_write():
    (writer,) = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))["contributions"]["writers"]
    assert writer["filename_extensions"] == [".png"]  # napari's own writes .tif


def test_pypi_and_the_hub_find_links_versions_and_platforms():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    urls = project["project"]["urls"]
    assert {"Source Code", "Bug Tracker", "Documentation"} <= set(urls)
    classifiers = project["project"]["classifiers"]
    for version in ("3.10", "3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    for system in ("MacOS", "Microsoft :: Windows", "POSIX :: Linux"):
        assert f"Operating System :: {system}" in classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)
    scm = project["tool"]["setuptools_scm"]
    assert "version_file" in scm and "write_to" not in scm  # write_to is deprecated
    hub = yaml.safe_load((ROOT / ".napari-hub" / "config.yml").read_text(encoding="utf-8"))
    assert set(hub["project_urls"]) >= {"Project Site", "Report Issues", "Documentation"}
    assert "napari-sansa" in (ROOT / ".napari-hub" / "DESCRIPTION.md").read_text(encoding="utf-8")
