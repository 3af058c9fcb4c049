"""Command line for longer fuzz runs.

``python -m tests.fuzzing --cases 20000 --seed 7 --json out.json`` (or ``python tests/fuzzing/run.py ...``)
prints the format x outcome table and the failure signatures, writes the full summary as JSON and copies
every failing input, with a ``case.json`` note, to ``--repro-dir``. ``--case N`` replays one case.
Exit status 1 when any case failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``tests.fuzzing`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "tests.fuzzing"

from .runner import DEFAULT_SEED, RunConfig, failure_report, findings_markdown, format_table, run


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m tests.fuzzing", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3000, help="number of mutated cases (default 3000)")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("OME_ARROW_DASK_FUZZ_SEED", DEFAULT_SEED)))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per case (default 20)")
    parser.add_argument("--memory-gib", type=float, default=3.0, help="address-space cap per worker (default 3)")
    parser.add_argument("--json", type=Path, help="write the full summary here")
    parser.add_argument("--findings", type=Path, help="write a Markdown report (tables, one example per signature)")
    parser.add_argument("--repro-dir", type=Path, default=Path("/tmp/fuzz_repros"))
    parser.add_argument("--work-dir", type=Path, help="keep seeds and logs here (default: a temp folder)")
    parser.add_argument("--samples", type=Path, help="sample folder (default ../shared/data/samples)")
    parser.add_argument("--case", type=int, action="append", dest="only", help="replay only case N (repeatable)")
    parser.add_argument("--format", action="append", dest="formats", help="only this format row (repeatable)")
    parser.add_argument("--kind", action="append", dest="kinds", help="only this mutation kind (repeatable)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run a campaign; return 1 when any case failed."""
    args = parse(argv)
    config = RunConfig(
        cases=args.cases,
        seed=args.seed,
        workers=args.workers,
        timeout=args.timeout,
        memory=int(args.memory_gib * 2**30),
        samples=args.samples,
        work_dir=args.work_dir,
        repro_dir=args.repro_dir,
        only=args.only,
        formats=args.formats,
        kinds=args.kinds,
        progress=True,
    )
    summary = run(config)
    print(format_table(summary))
    print(f"{summary['cases']} cases in {summary['elapsed_s']} s (seed {summary['seed']})")
    if summary["failures"]:
        print(failure_report(summary, limit=50))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=str))
        print(f"summary written to {args.json}")
    if args.findings:
        args.findings.write_text(findings_markdown(summary))
        print(f"findings written to {args.findings}")
    return 1 if summary["failures"] or summary["mutator_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
