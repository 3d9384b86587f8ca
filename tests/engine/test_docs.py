"""The user-facing texts keep their promises: README paths exist, metadata and changelog agree."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# folders the Makefile creates (git-ignored): the README names them as where outputs appear
GENERATED = {"dist": "make package", "demo_output": "make demo"}
_EXT = r"(?:py|md|sh|model3|toml|txt|html|gpkg|png|pbf|osm|json|csv|qml|svg)"
_TOKEN = re.compile(r"[\w.-]+(?:/[\w.-]*)*")


def readme_paths(text: str) -> set[str]:
    """Relative paths named in code (fenced blocks, spans) and links of a Markdown text.

    A token counts as a path when it ends in a file extension or starts with a top-level entry
    of the repository; URLs, absolute paths and words such as ``km/h`` do not.
    """
    fences = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    rest = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    spans = fences + re.findall(r"`([^`]+)`", rest) + re.findall(r"\]\(([^)\s]+)\)", rest)
    tops = {p.name for p in ROOT.iterdir()} | set(GENERATED)
    out = set()
    for span in spans:
        for token in span.split():
            token = token.split("=", 1)[1] if "=" in token else token
            if token.startswith(("/", "~", "<", "$")) or "://" in token:
                continue
            for match in _TOKEN.finditer(token):
                word = match.group(0).rstrip(".")
                if word.startswith("."):  # an extension named alone, e.g. `.qml`
                    continue
                if re.search(rf"\.{_EXT}$", word) or ("/" in word and word.split("/")[0] in tops):
                    out.add(word)
    return out


def _exists(path: str) -> bool:
    if (ROOT / path).exists():
        return True
    if "/" not in path.rstrip("/"):  # a module named by itself, e.g. `planning.py`
        return any(p for p in ROOT.rglob(path) if ".venv" not in p.parts)
    return False


def test_readme_path_finder_finds_what_it_should() -> None:
    text = "Run `scripts/qgis_process.sh run models/x.model3 -- ...` then [a](docs/a.png), "
    text += "`MANIFEST=/tmp/run.json`, `base.py`, `TOLERANCE × heaviest / its weight`, `km/h`.\n"
    text += "```sh\nscripts/demo.sh INPUT=sample_data/x.osm.pbf OUTPUT=/tmp/n.gpkg\n```\n"
    assert readme_paths(text) == {
        "scripts/qgis_process.sh", "models/x.model3", "docs/a.png", "base.py",
        "scripts/demo.sh", "sample_data/x.osm.pbf",
    }  # fmt: skip


def test_every_path_in_the_readme_exists() -> None:
    paths = readme_paths((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(paths) > 10
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    missing = []
    for path in sorted(paths):
        top = path.split("/")[0]
        if top in GENERATED:  # made by a make target, ignored by git: the README says which
            assert f"{top}/" in ignored
            assert top in makefile
            continue
        if not _exists(path):
            missing.append(path)
    assert not missing, f"README.md names paths that do not exist: {missing}"


def _metadata() -> configparser.SectionProxy:
    meta = configparser.ConfigParser()
    meta.read(ROOT / "metadata.txt", encoding="utf-8")
    return meta["general"]


def test_metadata_version_is_the_changelogs_top_entry_and_the_engines() -> None:
    meta = _metadata()
    version = meta["version"]
    top = re.match(r"\s*(\d+\.\d+\.\d+)", meta["changelog"])
    assert top, "metadata.txt changelog must start with a version"
    assert top.group(1) == version
    from territory_planner_plugin import __version__

    assert __version__ == version
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headers = re.findall(r"^## (\S+)", changelog, flags=re.MULTILINE)
    # the version is released (its header) or being prepared (Unreleased above the last release)
    assert version in headers or headers[0] == "Unreleased"
    released = [h for h in headers if re.fullmatch(r"\d+\.\d+\.\d+", h)]
    assert tuple(map(int, released[0].split("."))) <= tuple(map(int, version.split(".")))


def test_metadata_contact_is_the_issue_tracker() -> None:
    meta = _metadata()
    tracker = meta["tracker"]
    assert tracker.startswith("https://")
    assert tracker.endswith("/issues")
    assert tracker.startswith(meta["repository"])
    assert tracker in meta["about"]
    assert "@" in meta["email"]
