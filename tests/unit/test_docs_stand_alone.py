"""The repository stands alone: its documents link to nothing outside it but public pages.

A user clones only the repository, so a link to a sibling directory (``../shared/SPEC.md``) or
to a file that is not committed is a dead end for them. Checked over every committed Markdown
and YAML file.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Markdown links and images: [text](target) and reference definitions: [name]: target
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?[^)]*\)|^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
# Names of documents that live outside the repository, however they are written.
OUTSIDE = re.compile(r"\.\./shared|SPEC\.md|\bSPEC section|/work/|STYLE\.md|BENCH\.md")


def documents() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "*.md", "*.yaml", "*.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed]


def test_there_are_documents_to_check():
    names = {path.relative_to(ROOT).as_posix() for path in documents()}
    assert {"README.md", "openapi.yaml"} <= names


@pytest.mark.parametrize("path", documents(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_document_names_nothing_outside_the_repository(path):
    text = path.read_text()
    found = [m.group(0) for m in OUTSIDE.finditer(text)]
    assert not found, f"{path.name} refers outside the repository: {found}"


@pytest.mark.parametrize(
    "path",
    [p for p in documents() if p.suffix == ".md"],  # YAML patterns look like links
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_every_relative_link_is_a_file_in_the_repository(path):
    for match in LINK.finditer(path.read_text()):
        target = match.group(1) or match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#", target, re.IGNORECASE):
            continue  # a public URL (https:, mailto:) or an anchor in the same page
        resolved = (path.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{path.name} links outside the repository: {target}"
        assert resolved.exists(), f"{path.name} links to a missing file: {target}"


def test_no_code_comment_cites_a_document_outside_the_repository():
    """Docstrings and comments point readers at the README's sections, which ship with the code."""
    sources = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    cited = re.compile(r"\.\./shared|SPEC\.md|\bSPEC sections?\b|\bSPEC \d|STYLE\.md|BENCH\.md")
    found = [
        (name, match.group(0))
        for name in sources
        if name != "tests/unit/test_docs_stand_alone.py"
        for match in cited.finditer((ROOT / name).read_text())
    ]
    assert found == []
