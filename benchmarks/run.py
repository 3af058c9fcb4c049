"""Run every benchmark case in one process and print (or save) JSON results.

Each ``benchmarks/bench_*.py`` module exposes ``run(quick: bool) -> list[dict]``; every
dict is one side-by-side comparison: ``{"case": ..., "ours": {...}, "baseline": {...},
"ratio": ...}``. Usage::

    python benchmarks/run.py            # full sizes
    python benchmarks/run.py --quick    # small sizes, seconds
    python benchmarks/run.py --only dlpack --out results.json
    python benchmarks/run.py --quick --only plate  # 96-well plate to NGFF (bench_plate.py; full: 3.3 GiB)
    python benchmarks/run.py --quick --only remote  # S3 (moto) behind a 30 ms proxy (bench_remote.py)
    python benchmarks/run.py --quick --only speed   # issue 19's table, one case per row (bench_speed.py)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--only", default="", help="run modules whose name contains this text")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    results = []
    for path in sorted(HERE.glob("bench_*.py")):
        if args.only and args.only not in path.stem:
            continue
        started = time.perf_counter()
        cases = _load(path).run(quick=args.quick)
        for case in cases:
            case.setdefault("module", path.stem)
        results.extend(cases)
        print(f"# {path.stem}: {len(cases)} cases in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    report = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "quick": args.quick,
        "results": results,
    }
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
