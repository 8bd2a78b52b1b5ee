"""The docs site builds with `mkdocs build --strict` (a broken link, anchor or missing page fails),
renders offline, every CloudWatch alarm links to the runbook section that says what to do, and the
README stays short."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.cfn_template import load_template

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK_RE = re.compile(r"Runbook: docs/([\w/.-]+\.md)#([\w-]+)")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "true"}  # the theme's banner about MkDocs 2.0
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stderr[-4000:]}"
    return out


def test_docs_build_strict(site):
    for page in ("index.html", "get-started.html", "concepts/handoff.html", "operate/runbooks.html",
                 "reference/cli.html", "reference/configuration.html", "reference/metrics.html"):
        assert (site / page).is_file(), page


def remote_assets(site: Path) -> list[str]:
    """Scripts, styles, fonts and images a page would fetch from the network when viewed."""
    found = []
    pattern = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*?(?:src|href)=["'](?:https?:)?//([^"']+)""", re.I)
    for page in site.rglob("*.html"):
        for m in pattern.finditer(page.read_text(errors="replace")):
            tag = page.read_text(errors="replace")[m.start():m.start() + 60]
            if tag.lower().startswith("<link") and re.search(r'rel=["\']canonical', tag):
                continue
            found.append(f"{page.relative_to(site)}: //{m.group(1)}")
    for css in site.rglob("*.css"):
        for m in re.finditer(r"@import\s+url\(['\"]?(https?:[^)'\"]+)|url\(['\"]?(https?://[^)'\"]+)", css.read_text()):
            found.append(f"{css.relative_to(site)}: {m.group(1) or m.group(2)}")
    return found


def test_the_site_fetches_nothing_at_view_time(site, tmp_path):
    assert remote_assets(site) == []
    # control: a page pulling a font from a CDN is caught
    (tmp_path / "p.html").write_text('<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">')
    assert remote_assets(tmp_path) == ["p.html: //fonts.googleapis.com/css?family=Roboto"]


def _ids(html: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', html))


def runbook_gaps(template: dict, site: Path) -> list[str]:
    """Alarms whose description names no runbook section, or one the built site does not have."""
    gaps = []
    for name, res in template["Resources"].items():
        if res["Type"] != "AWS::CloudWatch::Alarm":
            continue
        m = RUNBOOK_RE.search(str(res["Properties"].get("AlarmDescription", "")))
        if not m:
            gaps.append(f"{name}: no 'Runbook: docs/<page>.md#<section>' in its AlarmDescription")
            continue
        page = site / m.group(1).replace(".md", ".html")
        if not page.is_file():
            gaps.append(f"{name}: {m.group(1)} is not a page")
        elif m.group(2) not in _ids(page.read_text()):
            gaps.append(f"{name}: {m.group(1)} has no section #{m.group(2)}")
    return gaps


def test_every_alarm_links_to_its_runbook_section(site):
    template = load_template(ROOT / "infra/region.yaml")
    alarms = [n for n, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(alarms) >= 7
    assert runbook_gaps(template, site) == []


def test_control_an_alarm_without_a_runbook_is_reported(site):
    template = load_template(ROOT / "infra/region.yaml")
    res = template["Resources"]
    res["CommitAgeAlarm"]["Properties"]["AlarmDescription"] = "The table has not committed."
    res["DowntimeAlarm"]["Properties"]["AlarmDescription"] += "x"  # #downtime-alarmx: no such section
    assert runbook_gaps(template, site) == [
        "CommitAgeAlarm: no 'Runbook: docs/<page>.md#<section>' in its AlarmDescription",
        "DowntimeAlarm: operate/alarms.md has no section #downtime-alarmx"]


def test_readme_is_short_and_points_to_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert "./scripts/demo.sh" in readme and "./scripts/test.sh" in readme
    assert "../shared" not in readme  # the repository carries its own design (docs/)
