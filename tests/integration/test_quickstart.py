"""The README's Quickstart runs as written: its ```sh blocks, in order, in one bash, in a checkout
where the real `make dev` program runs (tests/dev_stack.py), each printing what the README says.

A block's expected output is written under its command as ``# → <line>``; ``…`` stands for any
text. Each block's output must hold those lines in that order. The script runs with
``set -euo pipefail``, so a failing command or an undefined variable stops it in its block.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
MAX_LINES = 80
RUN_WITHIN_S = 240
MARK = "::quickstart block "


def quickstart() -> str:
    text = README.read_text()
    start = text.index("\n## Quickstart\n")
    end = text.index("\n## ", start + 1)
    return text[start + 1 : end]


def sh_blocks(section: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)


def expected_lines(block: str) -> list[re.Pattern]:
    """``# → text`` lines, as patterns where ``…`` matches anything."""
    found = re.findall(r"^# → (.*)$", block, flags=re.MULTILINE)
    return [re.compile(".*?".join(re.escape(part) for part in line.split("…"))) for line in found]


def script(blocks: list[str]) -> str:
    parts = ["set -euo pipefail"]
    for number, block in enumerate(blocks):
        parts += [f"printf '\\n{MARK}{number}\\n'", block]
    parts.append(f"printf '\\n{MARK}end\\n'")
    return "\n".join(parts) + "\n"


def outputs(text: str) -> dict[str, str]:
    """Each block's output by its number, and ``end`` when the script ran to its end."""
    pieces = re.split(rf"^{MARK}(\w+)$", text, flags=re.MULTILINE)
    return dict(zip(pieces[1::2], pieces[2::2], strict=True))


def test_the_quickstart_is_short_and_made_of_sh_blocks_that_state_their_output():
    section = quickstart()
    assert len(section.strip().splitlines()) <= MAX_LINES
    blocks = sh_blocks(section)
    assert len(blocks) >= 5
    assert all(expected_lines(block) for block in blocks)
    # One set of names, the ones .inlet/dev.env defines: no stand-ins a newcomer must guess.
    assert not re.search(r"\$\{?(INGEST|SOURCE|SOURCE_ID)\b", section)


@pytest.mark.slow
def test_every_quickstart_block_runs_as_written_against_make_dev(dev_stack, tmp_path):
    blocks = sh_blocks(quickstart())
    path = tmp_path / "quickstart.sh"
    path.write_text(script(blocks))
    ran = dev_stack.run(["bash", str(path)], timeout_s=RUN_WITHIN_S)
    text = ran.stdout + ran.stderr
    by_block = outputs(ran.stdout)
    last = max((int(n) for n in by_block if n != "end"), default=0)
    assert ran.returncode == 0 and "end" in by_block, (
        f"block {last} failed (exit {ran.returncode}):\n{blocks[last]}\n--- output:\n{text}"
    )
    for number, block in enumerate(blocks):
        lines = [line.strip() for line in by_block[str(number)].splitlines()]
        position = 0
        for pattern in expected_lines(block):
            while position < len(lines) and not pattern.fullmatch(lines[position]):
                position += 1
            assert position < len(lines), (
                f"block {number} did not print {pattern.pattern!r} where the README says:\n"
                f"{block}\n--- output:\n{by_block[str(number)]}"
            )
            position += 1
