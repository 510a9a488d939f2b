"""docs/partners.md's snippets are the files under examples/, verbatim, so the ones
tests/integration/test_partner_snippets.py runs against a live ingest are the ones partners copy."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = {
    "hmac_send.py": "python",
    "hmac_send.mjs": "js",
    "ed25519_keys.py": "python",
    "ed25519_send.py": "python",
    "ed25519_send.mjs": "js",
}


def test_every_example_is_quoted_and_run():
    """A new file under examples/ joins SNIPPETS here and a run in the integration test."""
    assert {p.name for p in (ROOT / "examples").iterdir() if p.is_file()} == set(SNIPPETS)


@pytest.mark.parametrize(("name", "language"), SNIPPETS.items())
def test_the_readme_holds_each_example_verbatim_in_a_code_block(name, language):
    text = (ROOT / "examples" / name).read_text()
    page = (ROOT / "docs" / "partners.md").read_text()
    assert f"```{language}\n{text}```\n" in page, (
        f"docs/partners.md lost or changed examples/{name}"
    )
