"""The benchmarks page (docs/benchmarks.md): each benchmark replaces its own section of it."""

from __future__ import annotations

from pathlib import Path

OBJECTS = "## Objects"  # the Objects section stays the page's last


def write_section(path: Path, heading: str, text: str, before: str | None = OBJECTS) -> None:
    """Replace the section under ``heading`` (up to the next ``## `` heading) with ``text``, or
    add it before the ``before`` section when the page has one, else at the end."""
    page = path.read_text() if path.exists() else "# Benchmarks\n"
    if heading + "\n" in page:
        start = page.index(heading + "\n")
        end = page.find("\n## ", start + len(heading))
        page = page[:start] + text.rstrip("\n") + "\n" + (page[end:] if end >= 0 else "")
    elif before and "\n" + before in page:
        at = page.index("\n" + before) + 1
        page = page[:at] + text.rstrip("\n") + "\n\n" + page[at:]
    else:
        page = page.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    path.write_text(page)


def sections(page: str) -> dict[str, str]:
    """The page's ``## `` sections by heading, each with its text up to the next one."""
    parts = ("\n" + page).split("\n## ")[1:]
    return {"## " + part.split("\n", 1)[0]: ("## " + part).rstrip("\n") + "\n" for part in parts}


def with_other_sections(new: str, old: str) -> str:
    """``new`` followed by the sections of ``old`` it does not write itself (those other
    benchmarks write), in their order on the old page."""
    kept = [text for heading, text in sections(old).items() if heading not in sections(new)]
    return "\n".join([new.rstrip("\n") + "\n", *kept])
