"""Every fenced Python block of the README and the docs pages below runs as pasted (issue 26,
point 12). A block that needs a GPU, the network or a server says so on the line before its
fence: ``<!-- not run: REASON -->``; it is skipped with that reason.

Every page is read: the README and each ``docs/*.md`` (signature listings are marked too), so
a new page is covered without being listed here. Blocks of one page run separately, each in a
fresh namespace: a block is complete as pasted.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")))
BLOCK = re.compile(r"(?:<!-- not run: (?P<skip>.*?) -->\n)?```python\n(?P<code>.*?)```", re.S)


def blocks() -> list:
    found = []
    for page in PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text[: match.start("code")].count("\n") + 1
            marks = [pytest.mark.skip(reason=match["skip"])] if match["skip"] else []
            found.append(pytest.param(match["code"], id=f"{page}:{line}", marks=marks))
    return found


@pytest.mark.parametrize("code", blocks())
def test_python_block_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a block that writes files writes them here
    exec(compile(code, "<doc block>", "exec"), {"__name__": "__doc_block__"})


def test_readme_commands_name_no_private_data_folder():
    """The README's commands use paths a user of a fresh clone has (``data/`` that they fill,
    as the README says), not the project machines' ``../shared/data`` (issue 26, point 11)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    spans = [c for c in re.findall(r"`([^`\n]+)`", text) if re.match(r"(ascl-bench|python) ", c)]
    commands = re.findall(r"```bash\n(.*?)```", text, re.S) + spans
    assert len(commands) > 20  # the blocks and the measured-numbers table's commands
    private = [c for c in commands if "../shared" in c]
    assert not private, private
