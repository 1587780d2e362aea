"""README's test command is exactly what CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_readme_test_command():
    readme = (ROOT / "README.md").read_text().splitlines()
    block = readme[readme.index("```bash") + 1 : readme.index("```bash") + 3]
    assert block[0].endswith("gelato simulate") or "gelato verify" in block[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert block[1] in ci
