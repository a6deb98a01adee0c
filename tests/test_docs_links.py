"""Every relative link in README.md, ARCHITECTURE.md and docs/*.md points to a file."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) and ![alt](target), outside code spans; the target ends at
# whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)[^)]*\)")


def _relative_links(page):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    # Indented code blocks (equations such as `[σ; σ](W x)` are not links).
    text = re.sub(r"^(    |\t).*$", "", text, flags=re.M)
    text = re.sub(r"`[^`\n]*`", "", text)
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (https:, mailto:) or an anchor on the same page
        yield target.split("#", 1)[0]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(page):
    missing = [
        target for target in _relative_links(page) if not (page.parent / target).exists()
    ]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_the_readme_keeps_its_two_commands_at_the_top():
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert blocks[:2] == [
        'pip install -e ".[examples]" && keras-gated tune sentiment --data sample --tuner grid '
        "--hp cell=bow,lstm,gru,peephole,coupled,untied,depth_gated,grid --epochs 2",
        'pip install -e ".[test]" && python -m pytest -q tests',
    ]
