"""The README's examples run as written: every fenced block after a line
``<!-- example -->`` (shell or Python), in the README's order, in one fresh folder holding
``instances/`` and ``solutions/`` (so that a block may use what an earlier one wrote), with the
installed ``milp`` of this interpreter's environment first on PATH."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

MARKER = "<!-- example -->"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def examples(text: str) -> list[tuple[int, str, str]]:
    """(line, language, code) of each marked block."""
    out = []
    for m in re.finditer(re.escape(MARKER) + r"\n", text):
        block = FENCE.match(text, m.end())
        assert block, f"README.md line {text.count(chr(10), 0, m.start()) + 1}: the marker " \
                      f"is not followed by a fenced block"
        out.append((text.count("\n", 0, block.start()) + 1, block[1], block[2]))
    return out


EXAMPLES = examples((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_has_examples_of_the_cli_and_the_api():
    languages = [lang for _, lang, _ in EXAMPLES]
    assert "sh" in languages and languages.count("python") >= 2
    codes = "\n".join(code for _, _, code in EXAMPLES)
    assert "milp.plan(" in codes and "Instance.from_frames(" in codes and "milp report" in codes


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("readme")
    for name in ("instances", "solutions"):
        (d / name).symlink_to(ROOT / name)
    (d / "out").mkdir()
    return d


@pytest.mark.parametrize("line, language, code", EXAMPLES,
                         ids=[f"line-{line}" for line, _, _ in EXAMPLES])
def test_example_runs_as_written(folder, line, language, code):
    bindir = Path(sys.executable).parent
    assert (bindir / "milp").is_file(), "milp is not installed in this environment"
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    if language == "sh":
        cmd = ["bash", "-euo", "pipefail", "-c", code]
    elif language == "python":
        cmd = [sys.executable, "-c", code]
    else:
        pytest.fail(f"README.md line {line}: cannot run a {language} block")
    r = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"README.md line {line}:\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr
