"""The README's two commands, as a new user types them: install + start the dashboard, then test.

The quick tests read the commands from README.md and check what they rely on; the slow one runs
them in order in a fresh virtual environment (with the machine's packages visible, so nothing big
is downloaded), as ``.ci/run`` runs the test command.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from tests.test_browser import _free_port, _healthy, _until

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> tuple[str, str]:
    """(install + start, test): the first two bash blocks of the README's "two commands"."""
    section = (ROOT / "README.md").read_text().split("## The two commands")[1].split("\n## ")[0]
    blocks = re.findall(r"```bash\n(.*?)\n```", section, re.S)
    assert len(blocks) >= 2 and all("\n" not in b for b in blocks[:2]), blocks
    return blocks[0], blocks[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _names(requirement: str) -> set[str]:
    """The distribution and its extras (``dask[distributed]`` brings the distributed package)."""
    extras = re.search(r"\[(.*?)\]", requirement)
    return {_name(requirement), *(_name(e) for e in (extras[1].split(",") if extras else []))}


def requirement_closure(path: Path) -> set[str]:
    """Distribution names a ``pip install -r path`` installs directly (``-r`` followed, ``-e .``
    expanded to the package and its pyproject dependencies)."""
    names: set[str] = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        if line.startswith("-r"):
            names |= requirement_closure(path.parent / line[2:].strip())
        elif line.startswith("-e"):
            project = tomllib.loads((path.parent / "pyproject.toml").read_text())["project"]
            names |= {project["name"]}.union(*map(_names, project["dependencies"]))
        else:
            names |= _names(line)
    return names


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, test = readme_commands()
    assert test.startswith("python -m pytest")
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test in lines


def _imported_distributions() -> set[str]:
    """The third-party distributions the test files import."""
    modules: set[str] = set()
    for path in (ROOT / "tests").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    dists = importlib.metadata.packages_distributions()
    examples = {p.stem for p in (ROOT / "examples").glob("*/*.py")}  # the repository's own
    third_party = modules - set(sys.stdlib_module_names) - {"cbal", "tests"} - examples
    return {_name(dists[m][0]) for m in third_party}


def test_the_install_command_installs_what_the_test_command_needs() -> None:
    install, test = readme_commands()
    files = re.findall(r"pip install -r (\S+)", install)
    assert files and "streamlit run app.py" in install.split("&&")[-1]
    installed = set().union(*(requirement_closure(ROOT / f) for f in files))
    needed = _imported_distributions() | {"pytest", "streamlit"}
    if "--cov" in test:
        needed.add("pytest-cov")
    assert "selenium" in needed and "pytest" in needed  # the scan itself works
    assert needed <= installed, f"not installed by {install!r}: {sorted(needed - installed)}"


@pytest.mark.slow
def test_the_two_commands_work_in_order_in_a_fresh_environment(tmp_path: Path) -> None:
    install, test = readme_commands()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}",
        VIRTUAL_ENV=str(venv),
        STREAMLIT_SERVER_PORT=str(port),
        CBAL_CACHE=str(tmp_path / "cache"),
    )
    log = tmp_path / "install.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "-c", install], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            _until("the dashboard", lambda: proc.poll() is not None or _healthy(url), 300)
            assert proc.poll() is None, log.read_text()[-3000:]
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    # the test command, literally; one quick file of the suite is enough to show it works here
    env.update(PYTEST_ADDOPTS="tests/test_config.py", COVERAGE_FILE=str(tmp_path / ".coverage"))
    done = subprocess.run(
        ["bash", "-c", test], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"\d+ passed", done.stdout) and "TOTAL" in done.stdout  # tests + coverage
    which = subprocess.run(
        [venv / "bin" / "python", "-c", "import cbal, pytest_cov; print(cbal.__file__)"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(which.stdout.strip()).is_relative_to(ROOT)  # this checkout, not another copy
