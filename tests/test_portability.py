"""The package where POSIX is missing (Windows): nothing it needs is POSIX-only.

The end-to-end test runs the package in a fresh interpreter whose imports of the POSIX-only
modules fail when napari_sansa asks for them, as on Windows, in folders and files whose names
have spaces and non-ASCII letters; the static test finds POSIX-only calls outside a platform check.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import napari_sansa
from napari_sansa.cli.references import split_reference

POSIX_MODULES = ("resource", "fcntl", "termios", "pwd", "grp", "posix", "crypt", "pty", "tty")
POSIX_CALLS = {
    "os": {"fork", "forkpty", "sysconf", "getuid", "geteuid", "getgid", "getpgid", "killpg", "setsid",
           "sched_getaffinity", "nice", "getloadavg", "statvfs", "uname", "mkfifo", "chown", "lchown"},
    "signal": {"SIGKILL", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGQUIT", "SIGCHLD", "SIGPIPE",
               "pause", "alarm", "setitimer", "siginterrupt"},
}  # fmt: skip

SCRIPT = textwrap.dedent(
    """
    import builtins, importlib, pkgutil, shutil, sys
    from pathlib import Path

    REFUSED = set(sys.argv[4].split(","))
    real_import = builtins.__import__

    def windows_import(name, globals=None, locals=None, fromlist=(), level=0):
        importer = (globals or {}).get("__name__", "")
        if level == 0 and name.split(".")[0] in REFUSED and importer.split(".")[0] == "napari_sansa":
            raise ModuleNotFoundError(f"No module named {name!r} (as on Windows)", name=name)
        return real_import(name, globals, locals, fromlist, level)

    builtins.__import__ = windows_import

    import numpy as np
    import imageio.v3 as iio
    import napari_sansa as ns
    from napari_sansa.samples import bright_discs

    for module in pkgutil.walk_packages(ns.__path__, "napari_sansa."):
        importlib.import_module(module.name)
    print("imported every module")

    root = Path(sys.argv[1])
    (root / "poids modèles").mkdir(parents=True)
    sam2 = shutil.copy(sys.argv[2], root / "poids modèles" / "sam2 tiny ü.pt")
    adapter = shutil.copy(sys.argv[3], root / "poids modèles" / "adaptateur ç.pth")
    config = ns.SansaConfig(device="cpu", image_size=128, precision="fp32")
    model = ns.Sansa.from_checkpoints(sam2, adapter, config=config)
    discs = bright_discs(6, (64, 64), seed=3)
    references = [ns.Reference(image, {1: ns.Mask(mask)}) for image, mask in discs]
    report = model.adapt(references, steps=2, evaluate_every=2, shots=1)
    assert len(report.losses) == 2 and report.peak_memory_bytes > 0, report
    model.save_adapter(root / "poids modèles" / "adapté é.pth")
    print("adapted")

    folder = root / "références à garder"
    ns.save_references(folder, references[:2], {1: "disque brillant"})
    back = ns.read_reference_set(folder)
    assert back.class_names == {1: "disque brillant"}
    def mask(reference):
        prompt = reference.prompts[1]
        return (prompt[0] if isinstance(prompt, list) else prompt).mask

    for saved, loaded in zip(references[:2], back.references):
        np.testing.assert_array_equal(mask(saved), mask(loaded))
        np.testing.assert_array_equal(saved.image, loaded.image.data)
    print("reference set round-tripped")

    data = root / "données d'essai"
    (data / "cibles à segmenter").mkdir(parents=True)
    iio.imwrite(data / "ça ü.png", discs[0][0])
    iio.imwrite(data / "ça ü masque.png", discs[0][1].astype(np.uint8))
    for i, (image, _) in enumerate(discs[1:3]):
        iio.imwrite(data / "cibles à segmenter" / f"cellule n°{i} é.png", image)
    from napari_sansa.cli.main import main

    import os
    os.environ["NAPARI_SANSA_CACHE_DIR"] = str(root / "缓存 ü")
    assert main(["models"]) == 0  # the cache's paths, on a stdout that has no letter for them
    code = main([
        "segment", "-r", f"{data / 'ça ü.png'}:{data / 'ça ü masque.png'}",
        str(data / "cibles à segmenter"), "--out", str(data / "résultats 細胞"),
        "--sam2", str(sam2), "--adapter", str(adapter), "--device", "cpu", "--image-size", "128",
    ])
    assert code == 0
    written = sorted(p.name for p in (data / "résultats 細胞").iterdir())
    assert written == ["cellule n°0 é_labels.png", "cellule n°1 é_labels.png"], written
    print("segmented")
    """
)


def test_the_package_runs_without_posix_modules_in_non_ascii_folders(tmp_path, checkpoints):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONIOENCODING": "cp1252"}  # a Windows pipe
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(napari_sansa.__file__).parents[1]), env.get("PYTHONPATH", "")]
    )
    root = tmp_path / "dossier de l'été ü"
    args = [str(root), str(checkpoints[0]), str(checkpoints[1]), ",".join(POSIX_MODULES)]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        capture_output=True,
        text=True,
        encoding="cp1252",
        errors="replace",
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    said = done.stdout.splitlines()
    for step in ("imported every module", "adapted", "reference set round-tripped", "segmented"):
        assert step in said


def _platform_checked(parents: list[ast.AST]) -> bool:
    """Whether a node sits under ``if sys.platform ...``/``os.name`` or in a ``try`` that catches
    AttributeError or ImportError (the fallback)."""
    for node in parents:
        if isinstance(node, ast.If) and any(
            isinstance(n, ast.Attribute) and n.attr in ("platform", "name") for n in ast.walk(node.test)
        ):
            return True
        if isinstance(node, ast.Try):
            caught = {
                n.id for h in node.handlers if h.type for n in ast.walk(h.type) if isinstance(n, ast.Name)
            }
            if caught & {"AttributeError", "ImportError", "ModuleNotFoundError"}:
                return True
    return False


def _posix_only_uses(path: Path) -> list[str]:
    found = []

    def visit(node: ast.AST, parents: list[ast.AST]) -> None:
        name = None
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.attr in POSIX_CALLS.get(node.value.id, ()):
                name = f"{node.value.id}.{node.attr}"
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            name = next((m for m in modules if m.split(".")[0] in POSIX_MODULES), None)
        if name and not _platform_checked(parents):
            found.append(f"{path.name}:{node.lineno}: {name}")
        for child in ast.iter_child_nodes(node):
            visit(child, [*parents, node])

    visit(ast.parse(path.read_text(encoding="utf-8")), [])
    return found


def test_posix_only_modules_and_calls_sit_behind_a_platform_check():
    root = Path(napari_sansa.__file__).parent
    found = [use for path in sorted(root.rglob("*.py")) for use in _posix_only_uses(path)]
    assert not found, "POSIX-only, without a platform check and a fallback:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("value", "image", "mask"),
    [
        (r"C:\data\ref.png:C:\data\ref mask.png", r"C:\data\ref.png", r"C:\data\ref mask.png"),
        ("C:/data/ref.png:mask.png", "C:/data/ref.png", "mask.png"),
        (r"ref.png:D:\masks\m.png", "ref.png", r"D:\masks\m.png"),
        ("/home/ü/ça ref.png:/home/ü/ça mask.png", "/home/ü/ça ref.png", "/home/ü/ça mask.png"),
    ],
)
def test_reference_pairs_with_windows_drive_letters_split_at_the_right_colon(value, image, mask):
    assert split_reference(value) == (Path(image), Path(mask))
