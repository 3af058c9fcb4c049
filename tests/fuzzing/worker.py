"""Long-lived read worker: one JSON request per line on stdin, one JSON result per line back.

Run as ``python worker.py <fd> <memory_bytes>``: results go to file descriptor ``fd`` (so nothing a
library prints can corrupt the protocol). The address space is capped with ``RLIMIT_AS`` before any
import; each case runs under a ``SIGALRM`` timer. A request names the case (``id``, ``kind``, the seed
input, ``seed_dir``, ``case_dir``, ``run_seed``, ``timeout``): the worker copies and damages the input
(:func:`prepare_case`, so mutations run in parallel too), then reads it (:func:`read_case`):
``OMEArrow.scan`` + shape/dtype + a full ``to_numpy()`` + a small crop through the dask graph and
through ``slice_lazy``, which must equal the same region of the full read.

Only the standard library is imported at module level, so the parent can import this module cheaply.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import traceback
import warnings
from typing import Any

MUTATION_NOTE = "mutation.json"
"""Written into the case directory before the read, so a crash or a hang keeps what was done."""

DIGEST_KINDS = frozenset({"identity", "parquet_dtype_disagree"})
"""Cases whose read reports :func:`value_digest` (the control, and the kinds the classifier compares values for)."""


class CaseTimeout(BaseException):
    """Raised by SIGALRM when a case runs past its timeout."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout()


def _crop_bounds(shape: tuple[int, ...]) -> tuple[slice, ...]:
    """A small box away from the origin: the last T/C/Z plane, a window in Y and X."""
    t, c, z, y, x = shape
    ys, xs = y // 3, x // 3
    return (
        slice(t - 1, t),
        slice(c - 1, c),
        slice(z - 1, z),
        slice(ys, min(y, ys + 7)),
        slice(xs, min(x, xs + 9)),
    )


def _same(a: Any, b: Any) -> bool:
    import numpy as np

    return bool(a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def value_digest(array: Any) -> str:
    """SHA-1 of the values as little-endian float64, whatever the dtype.

    uint16 ``7`` and float32 ``7.0`` hash alike, so a read in another (declared) type can be
    compared with the unmutated read; exact for integers below 2**53, which covers every
    seed input's pixel type.
    """
    import hashlib

    import numpy as np

    return hashlib.sha1(np.ascontiguousarray(array, dtype="<f8").tobytes()).hexdigest()


def read_case(target: str, options: dict[str, Any], *, digest: bool = False) -> dict[str, Any]:
    """Read ``target`` the way a user would and report what happened (never raises ``Exception``).

    With ``digest`` the result holds ``values``, the :func:`value_digest` of the full read.
    """
    from ome_arrow_dask import OMEArrow

    result: dict[str, Any] = {"status": "ok"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            img = OMEArrow.scan(target, **options)
            shape, dtype = tuple(int(s) for s in img.shape), str(img.dtype)
            result.update(shape=list(shape), dtype=dtype)
            full = img.to_numpy()
            if digest:
                result["values"] = value_digest(full)
            problems = []
            if tuple(full.shape) != shape or str(full.dtype) != dtype:
                problems.append(f"to_numpy() returned {full.shape} {full.dtype}, scan said {shape} {dtype}")
            elif all(shape):
                box = _crop_bounds(shape)
                crop = img.to_dask()[box].compute()
                if not _same(crop, full[box]):
                    problems.append(f"to_dask()[{box}] differs from to_numpy()[{box}]")
                again = img.slice_lazy(box[4].start, box[4].stop, box[3].start, box[3].stop,
                                       t_indices=[shape[0] - 1], c_indices=[shape[1] - 1],
                                       z_indices=[shape[2] - 1]).to_numpy()
                if not _same(again, full[box]):
                    problems.append("slice_lazy(...).to_numpy() differs from the same region of to_numpy()")
            if problems:
                result.update(status="inconsistent", message="; ".join(problems))
        except CaseTimeout:
            result = {"status": "timeout"}
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            result = describe_exception(exc, result)
    result["warnings"] = [
        {"category": w.category.__name__, "user": issubclass(w.category, UserWarning), "message": str(w.message)[:500]}
        for w in caught
    ]
    return result


def describe_exception(exc: BaseException, result: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON-able facts the classifier needs about ``exc``."""
    out = dict(result or {})
    out.update(
        status="error",
        exc_type=type(exc).__name__,
        exc_module=type(exc).__module__,
        mro=[f"{k.__module__}.{k.__qualname__}" for k in type(exc).__mro__],
        message=str(exc)[:4000],
        filename=getattr(exc, "filename", None) if isinstance(getattr(exc, "filename", None), str) else None,
        traceback="".join(traceback.format_exception(exc, limit=-8))[-6000:],
    )
    return out


def prepare_case(request: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Copy the seed input into the case directory and damage it; return (target, options, params).

    The damage is deterministic in ``(run_seed, id)``: ``numpy.random.default_rng([run_seed, id, 1])``.
    """
    import shutil
    from pathlib import Path

    import numpy as np

    from fuzzing.mutators import MUTATORS, NotApplicable
    from fuzzing.seeds import SeedInput

    seed = SeedInput(**{**request["seed"], "kinds": tuple(request["seed"]["kinds"])})
    case_dir = Path(request["case_dir"])
    src, root = Path(request["seed_dir"]) / seed.root, case_dir / seed.root
    root.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, root, symlinks=True)
    else:
        shutil.copyfile(src, root)
    params: dict[str, Any] = {}
    if request["kind"] != "identity":
        rng = np.random.default_rng([request["run_seed"], request["id"], 1])
        try:
            params = MUTATORS[request["kind"]](root, seed, rng)
        except NotApplicable as exc:
            params = {"not_applicable": str(exc)}
        except Exception as exc:  # a harness bug: reported, and the run goes on
            params = {"mutator_error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}
    (case_dir / MUTATION_NOTE).write_text(json.dumps(params, default=str))
    return str(case_dir / seed.target), seed.options, params


def _limit_memory(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv: list[str]) -> int:
    """Serve requests until stdin closes."""
    out_fd, limit = int(argv[1]), int(argv[2])
    out = os.fdopen(out_fd, "w", buffering=1)
    os.dup2(2, 1)  # library prints go to stderr, never into the protocol
    if limit > 0:
        _limit_memory(limit)
    import faulthandler

    faulthandler.enable()
    import dask

    dask.config.set(scheduler="synchronous")
    import ome_arrow_dask  # noqa: F401 - import before the first timed case

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: ``fuzzing``

    signal.signal(signal.SIGALRM, _on_alarm)
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        target, options, params = prepare_case(request)
        start = time.perf_counter()
        try:
            signal.setitimer(signal.ITIMER_REAL, float(request.get("timeout", 20)))
            result = read_case(target, options, digest=request["kind"] in DIGEST_KINDS)
        except CaseTimeout:
            result = {"status": "timeout", "warnings": []}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        result["id"] = request["id"]
        result["params"] = params
        result["elapsed"] = round(time.perf_counter() - start, 4)
        out.write(json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
