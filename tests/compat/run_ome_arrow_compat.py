"""Run ome-arrow 0.1.0's own tests against ome_arrow_dask through a name-only shim.

The README says our ``OMEArrow`` is a compatible superset of ome-arrow 0.1.0's. This script
checks that claim with ome-arrow's tests rather than ours:

1. Obtain ome-arrow 0.1.0's sdist from the package index (``pip download --no-binary``),
   cached in a temporary cache folder; its SHA-256 is pinned. It ships ``tests/`` and the
   test data.
2. Unpack it and write a shim folder holding an ``ome_arrow`` package whose modules only
   re-export ours (``ome_arrow`` -> ``ome_arrow_dask``, ``ome_arrow.core`` -> ``core``,
   ...). A name we do not have raises "... is not available in ome_arrow_dask"
   (``AttributeError``, or ``ImportError`` in a ``from ... import``); nothing is faked.
3. Run ``tests/test_core.py`` and ``tests/test_tensor.py`` in a fresh interpreter with the
   shim first on ``sys.path``, so the real ``ome_arrow`` (a test dependency) is shadowed;
   a plugin verifies that ``ome_arrow.__file__`` is the shim before any test runs.
4. Compare the outcome with ``allowlist.txt``: any failure not listed fails the run, and so
   does a listed test that now passes (remove its entry).

Usage: ``python tests/compat/run_ome_arrow_compat.py [--cache-dir DIR] [--keep WORKDIR]``.
Exit status 0 when the run matches the allow-list.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from pathlib import Path

OME_ARROW_VERSION = "0.1.0"
SDIST_NAME = f"ome_arrow-{OME_ARROW_VERSION}.tar.gz"
SDIST_SHA256 = "955db721dec93084b3884c526f5745af8c12e13e6a928a7c6ede7587fcb4c07c"
TEST_FILES = ("tests/test_core.py", "tests/test_tensor.py")
ALLOWLIST = Path(__file__).with_name("allowlist.txt")
KINDS = {
    "a": "deliberate difference (README table)",
    "b": "ome-arrow module-level function or private internal we do not claim",
    "tmp": "temporarily failing: work in progress",
}
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "ome-arrow-dask-compat-cache"

# ome-arrow module -> (our modules whose public names it re-exports, explicit name -> "module:attr").
SHIM_MODULES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "ome_arrow": (
        ("ome_arrow_dask",),
        {
            "OME_ARROW_STRUCT": "ome_arrow_dask.arrow_schema:OME_ARROW_STRUCT",
            "OME_ARROW_BYTE_STRUCT": "ome_arrow_dask.arrow_schema:OME_ARROW_BYTE_STRUCT",
            "OME_ARROW_TAG_TYPE": "ome_arrow_dask.arrow_schema:OME_ARROW_TYPE",
            "OME_ARROW_TAG_VERSION": "ome_arrow_dask.arrow_schema:OME_ARROW_VERSION",
            "to_ome_parquet": "ome_arrow_dask.arrow_interop:to_ome_parquet",
        },
    ),
    "ome_arrow.core": (("ome_arrow_dask.core",), {}),
    "ome_arrow.tensor": (("ome_arrow_dask.tensor",), {}),
    "ome_arrow.meta": (("ome_arrow_dask.arrow_schema",), {}),
    "ome_arrow.export": ((), {"to_ome_parquet": "ome_arrow_dask.arrow_interop:to_ome_parquet"}),
    "ome_arrow.ingest": ((), {}),
    "ome_arrow.transform": ((), {}),
    "ome_arrow.view": ((), {}),
    "ome_arrow.utils": ((), {}),
    "ome_arrow.dataset": ((), {}),
    "ome_arrow.shapes": ((), {}),
}

_SHIM_SUPPORT = '''\
"""Support code of the ome_arrow name-only shim (written by run_ome_arrow_compat.py)."""

import dis
import importlib
import sys

_IMPORT_FROM = dis.opmap.get("IMPORT_FROM")


class NotAvailableError(AttributeError):
    """A name of ome-arrow that ome_arrow_dask does not provide."""


def install(module_name, targets, names, submodules):
    """Give ``module_name`` a module ``__getattr__`` that forwards to ``targets`` / ``names``."""
    module = sys.modules[module_name]

    def __getattr__(name):
        if name in submodules:
            return importlib.import_module(module_name + "." + name)
        if name in names:
            owner, attr = names[name].split(":")
            return getattr(importlib.import_module(owner), attr)
        if not (name.startswith("__") and name.endswith("__")) or name == "__version__":
            for target in targets:
                found = importlib.import_module(target)
                if hasattr(found, name):
                    return getattr(found, name)
        mapped = ", ".join(targets) or "no module of ours"
        message = (
            f"{module_name}.{name} is not available in ome_arrow_dask "
            f"(the ome-arrow compatibility shim maps {module_name} to {mapped})"
        )
        caller = sys._getframe(1)
        if _IMPORT_FROM is not None and caller.f_code.co_code[caller.f_lasti] == _IMPORT_FROM:
            raise ImportError(message, name=module_name)
        raise NotAvailableError(message, name=name, obj=module)

    def __dir__():
        listed = set(names) | set(submodules)
        for target in targets:
            listed |= {n for n in dir(importlib.import_module(target)) if not n.startswith("_")}
        return sorted(listed)

    module.__getattr__ = __getattr__
    module.__dir__ = __dir__
'''

_GUARD_PLUGIN = '''\
"""pytest plugin of the compatibility run: shim check and outcome log (written by run_ome_arrow_compat.py)."""

import json
import os
from pathlib import Path

SHIM_DIR = Path(os.environ["OAD_COMPAT_SHIM_DIR"]).resolve()
RESULTS = Path(os.environ["OAD_COMPAT_RESULTS"])
_outcomes = {}


def pytest_configure(config):
    import ome_arrow
    import ome_arrow_dask

    where = Path(ome_arrow.__file__).resolve()
    if SHIM_DIR not in where.parents:
        raise RuntimeError(f"ome_arrow resolves to {where}, not to the shim in {SHIM_DIR}: the real package leaked in")
    print(f"compat: ome_arrow.__file__ = {where} (shim)")
    print(f"compat: ome_arrow_dask.__file__ = {ome_arrow_dask.__file__}")
    RESULTS.with_suffix(".shim").write_text(str(where))


def _record(nodeid, outcome, text):
    old = _outcomes.get(nodeid)
    if old is None or old[0] in ("passed", "skipped") and outcome == "failed":
        _outcomes[nodeid] = (outcome, text)


def pytest_collectreport(report):
    if report.failed:
        _record(report.nodeid or "<collection>", "failed", str(report.longrepr)[-2000:])


def pytest_runtest_logreport(report):
    if report.failed:
        _record(report.nodeid, "failed", str(report.longrepr)[-2000:])
    elif report.skipped:
        _record(report.nodeid, "skipped", str(report.longrepr)[-300:])
    elif report.when == "call":
        _record(report.nodeid, "passed", "")


def pytest_sessionfinish(session):
    RESULTS.write_text(json.dumps({k: list(v) for k, v in _outcomes.items()}, indent=1))
'''


@dataclasses.dataclass(frozen=True)
class Entry:
    """One allow-list entry: a test node id (``name[*]`` matches every parameter set)."""

    pattern: str
    kind: str
    reason: str
    line: int

    def matches(self, nodeid: str) -> bool:
        """True when ``nodeid`` is this entry's test."""
        if self.pattern.endswith("[*]"):
            return nodeid.startswith(self.pattern[:-2])
        return nodeid == self.pattern


def load_allowlist(path: Path = ALLOWLIST) -> list[Entry]:
    """Parse ``path``: each node id line is preceded by its own ``# (kind) reason`` comment line."""
    entries: list[Entry] = []
    comment: tuple[str, str] | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("##"):
            continue
        if line.startswith("#"):
            text = line[1:].strip()
            kind = text[1 : text.find(")")] if text.startswith("(") and ")" in text else ""
            if kind not in KINDS:
                raise ValueError(f"{path}:{number}: comment must start with one of ({'), ('.join(KINDS)}): {raw!r}")
            comment = (kind, text[text.find(")") + 1 :].strip())
            continue
        if comment is None:
            raise ValueError(f"{path}:{number}: entry {line!r} has no '# (kind) reason' comment line above it")
        if not comment[1]:
            raise ValueError(f"{path}:{number}: entry {line!r} has an empty reason")
        entries.append(Entry(line, comment[0], comment[1], number))
        comment = None
    return entries


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def obtain_sdist(cache_dir: Path = DEFAULT_CACHE) -> Path:
    """Return the cached sdist, downloading it with pip first if needed; fail if the index is unreachable."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached = cache_dir / SDIST_NAME
    if cached.is_file() and _sha256(cached) == SDIST_SHA256:
        return cached
    download = Path(tempfile.mkdtemp(prefix="download-", dir=cache_dir))
    try:
        command = [sys.executable, "-m", "pip", "download", f"ome-arrow=={OME_ARROW_VERSION}", "--no-deps"]
        command += ["--no-binary", ":all:", "--disable-pip-version-check", "-d", str(download)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        fetched = download / SDIST_NAME
        if done.returncode != 0 or not fetched.is_file():
            raise RuntimeError(
                f"could not download ome-arrow {OME_ARROW_VERSION}'s sdist from the package index "
                f"(pip exit {done.returncode}); the compatibility run needs network access to the index.\n"
                f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        digest = _sha256(fetched)
        if digest != SDIST_SHA256:
            raise RuntimeError(f"{SDIST_NAME} from the index has SHA-256 {digest}, expected {SDIST_SHA256}")
        os.replace(fetched, cached)
    finally:
        shutil.rmtree(download, ignore_errors=True)
    return cached


def unpack(sdist: Path, dest: Path) -> Path:
    """Unpack ``sdist`` into ``dest`` (tar ``data`` filter: no links out, no absolute paths); return its root."""
    with tarfile.open(sdist) as archive:
        archive.extractall(dest, filter="data")
    root = dest / f"ome_arrow-{OME_ARROW_VERSION}"
    missing = [name for name in (*TEST_FILES, "tests/conftest.py", "tests/data") if not (root / name).exists()]
    if missing:
        raise RuntimeError(f"{sdist} does not ship {', '.join(missing)}: cannot run ome-arrow's tests")
    return root


def write_shim(dest: Path) -> Path:
    """Write the ``ome_arrow`` name-only shim package and the guard plugin into ``dest``; return ``dest``."""
    package = dest / "ome_arrow"
    package.mkdir(parents=True)
    (dest / "_oad_shim.py").write_text(_SHIM_SUPPORT, encoding="utf-8")
    (dest / "_oad_compat_guard.py").write_text(_GUARD_PLUGIN, encoding="utf-8")
    for module_name, (targets, names) in SHIM_MODULES.items():
        parts = module_name.split(".")
        path = package / "__init__.py" if len(parts) == 1 else package / f"{parts[1]}.py"
        children = sorted(m.split(".")[1] for m in SHIM_MODULES if len(parts) == 1 and "." in m)
        text = f'''\
            """Name-only shim: {module_name} re-exports {", ".join(targets) or "nothing"}."""

            import _oad_shim

            _oad_shim.install(__name__, {targets!r}, {names!r}, {children!r})
            '''
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return dest


def run_tests(root: Path, shim: Path, results: Path, extra_args: list[str] | None = None) -> dict[str, list[str]]:
    """Run ome-arrow's test files in ``root`` with ``shim`` first on ``sys.path``; return node id -> outcome."""
    ini = shim / "pytest.ini"
    ini.write_text("[pytest]\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    env.update(
        PYTHONPATH=str(shim),
        PYTHONDONTWRITEBYTECODE="1",
        OAD_COMPAT_SHIM_DIR=str(shim),
        OAD_COMPAT_RESULTS=str(results),
        MPLBACKEND="Agg",
    )
    command = [sys.executable, "-m", "pytest", "-c", str(ini), "--rootdir", str(root), "-p", "_oad_compat_guard"]
    command += ["-p", "no:cacheprovider", "-p", "no:randomly", "-q", "-rfEs", "--continue-on-collection-errors"]
    command += [*TEST_FILES, *(extra_args or [])]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    print(done.stdout[-20000:], done.stderr[-5000:], sep="\n")
    if not results.with_suffix(".shim").is_file():
        raise RuntimeError("the compatibility run did not confirm that ome_arrow resolved to the shim")
    if not results.is_file():
        raise RuntimeError(f"pytest exited {done.returncode} without writing results")
    outcomes: dict[str, list[str]] = json.loads(results.read_text())
    return outcomes


def compare(outcomes: dict[str, list[str]], entries: list[Entry]) -> list[str]:
    """Return the problems: failures not on the allow-list, and entries whose tests now pass."""
    problems = []
    for nodeid, (outcome, text) in sorted(outcomes.items()):
        listed = [entry for entry in entries if entry.matches(nodeid)]
        if outcome == "failed" and not listed:
            last = text.strip().splitlines()[-1] if text.strip() else ""
            problems.append(f"unexpected failure: {nodeid}\n    {last}")
    for entry in entries:
        hit = [outcome for nodeid, (outcome, _) in outcomes.items() if entry.matches(nodeid)]
        if not hit:
            problems.append(f"allowlist.txt:{entry.line}: {entry.pattern} matches no test (stale entry)")
        elif "failed" not in hit and "passed" in hit:
            problems.append(f"allowlist.txt:{entry.line}: {entry.pattern} now passes: remove its entry")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Run the compatibility check; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where the sdist is cached")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (e.g. -k NAME)")
    args = parser.parse_args(argv)
    entries = load_allowlist()
    sdist = obtain_sdist(args.cache_dir)
    work = args.keep or Path(tempfile.mkdtemp(prefix="ome-arrow-compat-"))
    try:
        root = unpack(sdist, work)
        shim = write_shim(work / "shim")
        outcomes = run_tests(root, shim, work / "results.json", args.pytest_args)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    counts = {k: sum(1 for v in outcomes.values() if v[0] == k) for k in ("passed", "failed", "skipped")}
    print(f"compat: {counts} over {len(outcomes)} tests; allow-list has {len(entries)} entries")
    problems = [] if args.pytest_args else compare(outcomes, entries)
    for problem in problems:
        print(problem)
    return 1 if problems or (args.pytest_args and counts["failed"]) else 0


if __name__ == "__main__":
    sys.exit(main())
