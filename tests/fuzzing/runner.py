"""The fuzz run: seed inputs, a deterministic case list, a small pool of capped worker processes.

Case ``i`` of a run with seed ``S`` is fully determined by ``(S, i)``: the (format, kind) pair is
``pairs[i % len(pairs)]`` of a list shuffled by ``S`` (so every pair is covered evenly), and the
seed input and the damage come from ``numpy.random.default_rng([S, i])``. ``run(..., only=[i])``
replays one case.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .classify import FAILURES, OUTCOMES, classify, names_for, signature
from .seeds import SeedInput, build_seeds
from .worker import MUTATION_NOTE

WORKER = Path(__file__).with_name("worker.py")
DEFAULT_SEED = 20260513
DEFAULT_MEMORY = 3 * 2**30
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Case:
    """One mutated input and, once read, its outcome."""

    index: int
    fmt: str
    kind: str
    seed_input: SeedInput
    directory: Path
    params: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    outcome: str = ""
    reason: str = ""

    @property
    def root(self) -> Path:
        return self.directory / self.seed_input.root

    @property
    def target(self) -> str:
        return str(self.directory / self.seed_input.target)

    def record(self, run_seed: int) -> dict[str, Any]:
        """The JSON-able summary of this case."""
        return {
            "index": self.index,
            "run_seed": run_seed,
            "format": self.fmt,
            "kind": self.kind,
            "input": self.seed_input.name,
            "params": self.params,
            "outcome": self.outcome,
            "reason": self.reason,
            "exception": self.result.get("exc_type"),
            "message": self.result.get("message"),
            "shape": self.result.get("shape"),
            "elapsed": self.result.get("elapsed"),
        }


class Worker:
    """One long-lived reader process, restarted after a crash or a hang."""

    def __init__(self, memory: int, log_dir: Path, number: int, seed_dir: Path, run_seed: int) -> None:
        self.memory, self.log_path = memory, log_dir / f"worker-{number}.log"
        self.seed_dir, self.run_seed = seed_dir, run_seed
        self.proc: subprocess.Popen[str] | None = None
        self.case: Case | None = None
        self.started = 0.0
        self.restarts = -1
        self.log_offset = 0
        self.start()

    def start(self) -> None:
        read_fd, write_fd = os.pipe()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "BLOSC_NTHREADS": "1", "PYTHONFAULTHANDLER": "1"}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        if getattr(self, "log", None) is not None:
            self.log.close()
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(write_fd), str(self.memory)],
            stdin=subprocess.PIPE,
            stderr=self.log,
            stdout=self.log,
            pass_fds=(write_fd,),
            text=True,
            env=env,
        )
        os.close(write_fd)
        self.reader = os.fdopen(read_fd, "r")
        self.restarts += 1
        ready = self.reader.readline()
        if not ready:
            raise RuntimeError(f"fuzz worker failed to start; see {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, n: int = 3000) -> str:
        """The end of what the worker wrote to stderr since the current case was sent."""
        try:
            if not self.log.closed:
                self.log.flush()
            with open(self.log_path, "rb") as fh:
                fh.seek(self.log_offset)
                return fh.read().decode(errors="replace")[-n:]
        except OSError:
            return ""

    def send(self, case: Case, timeout: float) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.case, self.started = case, time.monotonic()
        self.log_offset = self.log_path.stat().st_size
        if self.proc.poll() is not None:
            raise BrokenPipeError(f"worker exited with {self.proc.returncode}")
        request = {
            "id": case.index,
            "kind": case.kind,
            "seed": asdict(case.seed_input),
            "seed_dir": str(self.seed_dir),
            "case_dir": str(case.directory),
            "run_seed": self.run_seed,
            "timeout": timeout,
        }
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any] | None:
        """The next result line, or None when the worker died."""
        line = self.reader.readline()
        return json.loads(line) if line else None

    def kill(self) -> int | None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        self.reader.close()
        return code

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.close()
        self.log.close()


@dataclass
class RunConfig:
    """Parameters of one fuzz run."""

    cases: int = 3000
    seed: int = DEFAULT_SEED
    workers: int = 2
    timeout: float = 20.0
    memory: int = DEFAULT_MEMORY
    samples: Path | None = None
    work_dir: Path | None = None
    repro_dir: Path | None = None
    only: list[int] | None = None
    formats: list[str] | None = None
    kinds: list[str] | None = None
    progress: bool = False
    watchdog_slack: float = 10.0
    """Seconds past ``timeout`` before the parent kills a worker whose alarm did not fire."""


def case_pairs(seeds: list[SeedInput], seed: int) -> list[tuple[str, str]]:
    """Every (format, kind) pair that some seed input supports, shuffled by ``seed``."""
    pairs = sorted({(s.fmt, k) for s in seeds for k in s.kinds})
    rng = np.random.default_rng([seed, 0xF022])
    return [pairs[i] for i in rng.permutation(len(pairs))]


def make_case(index: int, pairs: list[tuple[str, str]], seeds: list[SeedInput], work: Path, run_seed: int) -> Case:
    """Pick the seed input of case ``index`` (deterministic in ``(run_seed, index)``); the worker damages it."""
    fmt, kind = pairs[index % len(pairs)]
    rng = np.random.default_rng([run_seed, index, 0])
    candidates = [s for s in seeds if s.fmt == fmt and kind in s.kinds]
    seed_input = candidates[int(rng.integers(len(candidates)))]
    return Case(index, fmt, kind, seed_input, work / f"case-{index:06d}")


def identity_case(number: int, seed_input: SeedInput, work: Path) -> Case:
    """The unmutated control of one seed input (its read gives the baseline shape)."""
    return Case(-1 - number, seed_input.fmt, "identity", seed_input, work / f"control-{number:03d}")


class Pool:
    """Hands cases to idle workers; a parent-side watchdog kills a worker stuck past the timeout."""

    def __init__(self, config: RunConfig, log_dir: Path, seed_dir: Path) -> None:
        self.config = config
        self.workers = [Worker(config.memory, log_dir, n, seed_dir, config.seed) for n in range(config.workers)]

    def close(self) -> None:
        for worker in self.workers:
            worker.close()

    def run(self, cases: Any, finish: Any) -> None:
        """Read every case from the iterator ``cases``; call ``finish(case)`` as each completes."""
        pending = iter(cases)
        exhausted = False
        grace = self.config.timeout + self.config.watchdog_slack
        while True:
            for worker in self.workers:
                if worker.case is None and not exhausted:
                    case = next(pending, None)
                    if case is None:
                        exhausted = True
                    else:
                        try:
                            worker.send(case, self.config.timeout)
                        except (BrokenPipeError, OSError):  # died between cases: count it on this case
                            self._restart(worker, finish, "crash", "")
            busy = [w for w in self.workers if w.case is not None]
            if not busy:
                return
            now = time.monotonic()
            wait = max(0.01, min(w.started + grace - now for w in busy))
            ready, _, _ = select.select([w.reader for w in busy], [], [], wait)
            for worker in busy:
                if worker.reader in ready:
                    self._collect(worker, finish)
                elif time.monotonic() > worker.started + grace:
                    self._restart(worker, finish, "hang", f"no answer after {grace:.0f} s; worker killed")

    def _collect(self, worker: Worker, finish: Any) -> None:
        result = worker.receive()
        case = worker.case
        assert case is not None
        if result is None:
            self._restart(worker, finish, "crash", "")
            return
        worker.case = None
        case.result = result
        case.params = result.pop("params", None) or _params_file(case)
        finish(case)

    def _restart(self, worker: Worker, finish: Any, status: str, message: str) -> None:
        case = worker.case
        assert case is not None
        code = worker.kill()
        tail = worker.log_tail(1500)
        if status == "crash":
            message = f"worker exited with {code}; log tail:\n{tail}"
        if status == "crash" and ("MemoryError" in tail or "std::bad_alloc" in tail):
            status = "memory"
        case.result = {"status": "crash" if status == "memory" else status, "message": message,
                       "elapsed": round(time.monotonic() - worker.started, 3)}
        worker.case = None
        case.params = _params_file(case)
        worker.start()
        finish(case, forced=status)


def _params_file(case: Case) -> dict[str, Any]:
    """What the worker did to the input, from the note it writes before reading (kept after a crash)."""
    try:
        return json.loads((case.directory / MUTATION_NOTE).read_text())
    except (OSError, ValueError):
        return {"unknown": "the worker left no mutation note"}


def _save_repro(case: Case, repro_dir: Path, run_seed: int) -> Path:
    """Copy the damaged input and a note with what was done and what happened."""
    target = repro_dir / f"{case.fmt.replace('/', '_')}-{case.kind}-{case.index}"
    if target.exists():
        shutil.rmtree(target)
    if case.directory.exists():
        shutil.copytree(case.directory, target, symlinks=True)
    else:
        target.mkdir(parents=True)
    note = case.record(run_seed)
    note["traceback"] = case.result.get("traceback")
    note["target"] = str(target / case.seed_input.target)
    note["options"] = case.seed_input.options
    note["replay"] = f"python -m tests.fuzzing --seed {run_seed} --case {case.index}"
    (target / "case.json").write_text(json.dumps(note, indent=2, default=str))
    return target


def _samples(given: Path | None, work: Path) -> Path:
    """The sample folder: ``given``, else ../shared/data/samples, else the bundled copy unpacked in ``work``."""
    if given is not None:
        return Path(given)
    shared = Path(os.environ.get("OME_ARROW_DASK_SAMPLES", REPO.parent / "shared" / "data" / "samples"))
    if shared.is_dir():
        return shared
    import tarfile

    with tarfile.open(REPO / "tests" / "data" / "samples.tar.xz") as tar:
        tar.extractall(work / "bundled", filter="data")
    return work / "bundled" / "samples"


def run(config: RunConfig) -> dict[str, Any]:
    """Run the fuzz campaign described by ``config``; return the summary (see :func:`summarize`)."""
    own_work = config.work_dir is None
    work = Path(tempfile.mkdtemp(prefix="oad-fuzz-")) if own_work else Path(config.work_dir)
    repro_dir = Path(config.repro_dir or work / "repros")
    repro_dir.mkdir(parents=True, exist_ok=True)
    seed_dir, case_dir = work / "seeds", work / "cases"
    case_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    seeds = build_seeds(_samples(config.samples, work), seed_dir)
    if config.formats:
        seeds = [s for s in seeds if s.fmt in config.formats]
    seed_time = time.monotonic() - started
    pairs = case_pairs(seeds, config.seed)
    if config.kinds:
        pairs = [p for p in pairs if p[1] in config.kinds]
    baselines: dict[str, list[int] | None] = {}
    baseline_values: dict[str, str | None] = {}
    records: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []

    def finish(case: Case, forced: str | None = None) -> None:
        if case.kind == "identity":
            baselines[case.seed_input.name] = case.result.get("shape") if case.result.get("status") == "ok" else None
            baseline_values[case.seed_input.name] = case.result.get("values")
        names = names_for(case.root) | {case.seed_input.name.split("/")[-1]}
        case.outcome, case.reason = classify(
            case.result,
            kind=case.kind,
            baseline_shape=baselines.get(case.seed_input.name),
            names=names,
            params=case.params,
            baseline_values=baseline_values.get(case.seed_input.name),
        )
        if forced == "memory":
            case.outcome = "memory"
        if case.kind == "identity" and case.outcome != "ok_same":
            case.reason = f"the UNMUTATED input does not read cleanly ({case.outcome}): {case.reason}"
            if case.outcome not in FAILURES:
                case.outcome = "control_failed"
        record = case.record(config.seed)
        if case.outcome in FAILURES:
            record["repro"] = str(_save_repro(case, repro_dir, config.seed))
            failures.append(record)
        records.append(record)
        shutil.rmtree(case.directory, ignore_errors=True)
        if config.progress and len(records) % 250 == 0:
            print(f"  {len(records)} cases, {len(failures)} failures, {time.monotonic() - started:.0f} s", flush=True)

    pool = Pool(config, work, seed_dir)
    try:
        pool.run([identity_case(i, s, case_dir) for i, s in enumerate(seeds)], finish)
        indices = config.only if config.only is not None else range(config.cases)
        pool.run((make_case(i, pairs, seeds, case_dir, config.seed) for i in indices), finish)
        restarts = sum(w.restarts for w in pool.workers)
    finally:
        pool.close()
    summary = summarize(records, failures, config, time.monotonic() - started, seed_time, restarts)
    summary["repro_dir"] = str(repro_dir)
    if own_work and not failures:
        shutil.rmtree(work, ignore_errors=True)
    return summary


def summarize(records: list[dict[str, Any]], failures: list[dict[str, Any]], config: RunConfig, elapsed: float,
              seed_time: float, restarts: int) -> dict[str, Any]:
    """Counts by format x outcome and by kind x outcome, failure signatures, the slowest cases."""
    by_format: dict[str, Counter[str]] = {}
    by_kind: dict[str, Counter[str]] = {}
    for r in records:
        by_format.setdefault(r["format"], Counter())[r["outcome"]] += 1
        by_kind.setdefault(r["kind"], Counter())[r["outcome"]] += 1
    groups: dict[str, dict[str, Any]] = {}
    for f in failures:
        key = signature(f)
        group = groups.setdefault(key, {"count": 0, "example": f})
        group["count"] += 1
    slow = sorted((r for r in records if r.get("elapsed")), key=lambda r: -float(r["elapsed"]))[:10]
    return {
        "seed": config.seed,
        "cases": len(records),
        "elapsed_s": round(elapsed, 1),
        "seed_build_s": round(seed_time, 1),
        "worker_restarts": restarts,
        "totals": dict(Counter(r["outcome"] for r in records)),
        "by_format": {k: dict(v) for k, v in sorted(by_format.items())},
        "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "failures": failures,
        "signatures": dict(sorted(groups.items(), key=lambda kv: -kv[1]["count"])),
        "slowest": [{k: r[k] for k in ("index", "format", "kind", "outcome", "elapsed")} for r in slow],
        "not_applicable": sum(1 for r in records if "not_applicable" in r["params"]),
        "mutator_errors": [r for r in records if "mutator_error" in r["params"]][:20],
    }


def format_table(summary: dict[str, Any], key: str = "by_format") -> str:
    """A plain-text table of counts, one row per format (or kind), one column per outcome."""
    rows = summary[key]
    columns = [o for o in OUTCOMES if any(o in row for row in rows.values())]
    width = max([len(k) for k in rows] + [6])
    head = f"{'':<{width}} " + " ".join(f"{c:>{max(len(c), 5)}}" for c in columns) + "  total"
    lines = [head]
    for name, row in rows.items():
        cells = " ".join(f"{row.get(c, 0):>{max(len(c), 5)}}" for c in columns)
        lines.append(f"{name:<{width}} {cells}  {sum(row.values()):>5}")
    total = {c: sum(row.get(c, 0) for row in rows.values()) for c in columns}
    cells = " ".join(f"{total[c]:>{max(len(c), 5)}}" for c in columns)
    lines.append(f"{'total':<{width}} {cells}  {sum(total.values()):>5}")
    return "\n".join(lines)


def failure_report(summary: dict[str, Any], limit: int = 300) -> str:
    """Failure signatures with one example each, then one line per failing case (format, kind, seed, exception)."""
    failures = summary["failures"]
    lines = [
        f"{len(failures)} failing cases (run seed {summary['seed']}; case i uses rng seed [run seed, i]); "
        f"repro files under {summary['repro_dir']}",
        f"{len(summary['signatures'])} distinct signatures (format | kind | outcome | message):",
    ]
    for key, group in summary["signatures"].items():
        ex = group["example"]
        lines.append(f"- [{group['count']}x] {key}")
        lines.append(f"    e.g. case {ex['index']} ({ex['input']}) {json.dumps(ex['params'], default=str)[:200]}")
        lines.append(f"    repro: {ex.get('repro')}")
    lines.append("every failing case:")
    for f in failures[:limit]:
        lines.append(
            f"  case {f['index']} seed [{f['run_seed']}, {f['index']}] {f['format']} {f['kind']} {f['outcome']}: "
            f"{str(f['reason'])[:240]} -> {f.get('repro')}"
        )
    if len(failures) > limit:
        lines.append(f"  ... and {len(failures) - limit} more (all in the summary JSON)")
    return "\n".join(lines)


def findings_markdown(summary: dict[str, Any]) -> str:
    """A Markdown report: counts by format and by kind, and one example per failure signature."""
    lines = [
        f"# Fuzz findings (seed {summary['seed']}, {summary['cases']} cases, {summary['elapsed_s']} s)",
        "",
        "Replay a case: `python -m tests.fuzzing --seed SEED --case N`. Failure outcomes: "
        + ", ".join(sorted(FAILURES)) + ".",
        "",
        "## Counts by format x outcome",
        "```",
        format_table(summary),
        "```",
        "## Counts by mutation kind x outcome",
        "```",
        format_table(summary, "by_kind"),
        "```",
        f"## {len(summary['failures'])} failing cases, {len(summary['signatures'])} signatures",
        "",
    ]
    for key, group in summary["signatures"].items():
        ex = group["example"]
        message = str(ex.get("message") or ex.get("reason") or "").strip().splitlines()
        lines.append(f"- **{group['count']}x** `{key}`")
        lines.append(
            f"  - e.g. case {ex['index']}: {ex['format']} / `{ex['kind']}` on `{ex['input']}` "
            f"{json.dumps(ex['params'], default=str)[:240]}"
        )
        lines.append(f"  - {ex['outcome']}: `{ex.get('exception') or ''}` {(message[0] if message else '')[:300]}")
        lines.append(f"  - repro: `{ex.get('repro')}`")
    if summary.get("mutator_errors"):
        lines.append("## Harness errors (mutators that failed)")
        lines.extend(f"- {json.dumps(r, default=str)[:400]}" for r in summary["mutator_errors"])
    return "\n".join(lines) + "\n"
