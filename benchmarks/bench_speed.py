"""Issue 19's speed table: one case per row of the table, side by side in one run.

Rows (ours vs reference: goal):

1. TIFF stack -> OME-Zarr (zstd + bitshuffle): the whole ``ome-arrow-dask convert``
   process vs a 2-thread read + compress + write loop: >= 0.95x the loop's speed.
2. The same export with 3 pyramid levels vs 1 level: >= 0.85x the 1-level speed.
3. Compressed zarr v3 writes alone: zarr-python's default pipeline / zarrs / tensorstore
   vs a numcodecs + crc32c loop (no goal: it explains row 1).
4. ``import ome_arrow_dask`` in a fresh process (seconds, peak RSS, heavy modules
   loaded), beside ``import zarr`` and ``import tifffile``: <= 0.4 s.
5. A script that opens an NGFF zarr and reads one 512²x16 crop, whole process, vs the
   same script with zarr direct: <= 1.5x.
6. The same crop in a warm process, store reopened per crop: ours on the NGFF zarr and
   ours on an ome-arrow Parquet dataset (our writer) vs zarr direct on the zarr, with
   ome-arrow 0.1.0's ``OMEArrowDataset.read_region`` on the dataset beside: <= 1.1x.
7. One plane of one file of a 60-file stack, first ``scan().slice_lazy().to_numpy()``
   after import in a fresh process, beside its warm repeat and a ``tifffile`` page read:
   <= 5 ms.
8. Full read of the 60 files, ``scan().to_dask().sum().compute()`` vs a plain
   ``tifffile.imread`` loop: <= 1.1x.
9. ``ome-arrow-dask info file.ome.tiff``, whole process, beside a tifffile script
   printing the same header and a bare ``python -c pass``: <= 0.5 s.

Rows 1-3 reuse the writers, ceilings and input generators of ``bench_convert`` and
``bench_zarr_write`` (a smaller set of cases: only what the table needs). Rows 4, 5, 7
and 9 run fresh ``python`` subprocesses (medians of N, interleaved so a noisy machine
slows both sides alike); rows 1-3, 6 and 8 run round robin in this process. Every pair
is checked for equal pixels (``pixels_equal``): zarr outputs read back and compared with
the input, crops and planes compared by crc32 with the generated data, the ceiling's
chunk files decoded and compared.

Every case carries ``row``, ``job``, ``issue_now`` (the figure the issue was filed with),
``goal``, ``ratio`` (ours / reference, in seconds: above 1 means ours is slower),
``goal_value`` (the figure the goal is stated in), ``meets_goal`` and ``now`` (a short
text for RESULTS.md). A row that raises is reported with ``error`` and the others still
run. ``python benchmarks/bench_speed.py [--quick]`` prints the JSON and the markdown table;
``python benchmarks/bench_speed.py --table results.json`` renders a saved run.py output.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

CROP = (16, 512, 512)  # Z, Y, X of the crop in rows 5-6 (the issue's 512²x16)
ZARR_CHUNKS = (1, 1, 16, 512, 512)  # NGFF zarr and Parquet dataset chunks: one crop = one chunk
STACK_PATTERN = "stack_t{t}.tif"
HEAVY = ("dask.array", "dask.dataframe", "distributed", "pandas", "xarray", "pyarrow", "zarr", "tifffile", "numcodecs")

QUICK = {
    "convert": (2, 2, (64, 512, 512)),  # n_t, n_c, ZYX per file: 128 MiB
    "write_shape": (1, 2, 64, 512, 512),  # 64 MiB in memory, 8 chunks
    "ngff_shape": (1, 2, 32, 1024, 1024),  # 128 MiB, 16 chunks
    "stack": (60, (8, 256, 256)),  # 60 files, 60 MiB
    "rounds": 3,  # in-process round robin
    "children": 3,  # fresh processes per side
    "import_children": 5,
    "warm_crops": 12,
}
FULL = {
    "convert": (4, 2, (64, 1024, 1024)),  # 1 GiB
    "write_shape": (1, 4, 128, 1024, 1024),  # 1 GiB, as in the issue
    "ngff_shape": (1, 2, 32, 2048, 2048),  # 512 MiB, 64 chunks
    "stack": (60, (16, 512, 768)),  # 60 files, 0.75 GB, as in the issue
    "rounds": 3,
    "children": 7,
    "import_children": 11,
    "warm_crops": 40,
}

ROWS = {
    1: (
        "TIFF stack -> OME-Zarr (zstd + bitshuffle), whole CLI process vs a 2-thread read + compress + write loop",
        "0.61-0.72x of that ceiling",
        ">= 0.95x",
    ),
    2: ("same with 3 pyramid levels vs 1 level", "0.56x", ">= 0.85x"),
    3: (
        "compressed zarr v3 writes alone: default pipeline / zarrs / tensorstore, vs the same loop",
        "0.55-0.66x / 0.85-0.89x / 0.93-1.2x",
        "(the reason for row 1)",
    ),
    4: ("`import ome_arrow_dask`", "1.0-1.9 s, 157 MB RSS", "<= 0.4 s"),
    5: (
        "script opening an NGFF zarr and reading one 512²x16 crop, whole process, vs zarr direct",
        "3.0-3.4x",
        "<= 1.5x",
    ),
    6: (
        "the same crop in a warm process (store reopened per crop), ours vs zarr direct: NGFF zarr / Parquet dataset",
        "1.24x / 1.96x",
        "<= 1.1x both",
    ),
    7: (
        "one plane of one file of a 60-file stack, first call after import",
        "34 ms (warm repeat 4 ms; tifffile page read 1 ms)",
        "<= 5 ms",
    ),
    8: (
        "full read of the 60 files, `to_dask().sum().compute()` vs a plain `tifffile.imread` loop",
        "1.47-1.66x",
        "<= 1.1x",
    ),
    9: ("`ome-arrow-dask info file.ome.tiff`", "~1.0 s, mostly imports", "<= 0.5 s"),
}


# ---------------------------------------------------------------------------- helpers
def _case(row: int, what: str, ours: dict, baseline: dict, **fields: object) -> dict:
    job, issue_now, goal = ROWS[row]
    return {
        "case": f"issue 19 row {row}: {what}",
        "row": row,
        "job": job,
        "issue_now": issue_now,
        "goal": goal,
        "ours": ours,
        "baseline": baseline,
        **fields,
        "loadavg": [round(v, 1) for v in os.getloadavg()],
    }


def _median_runs(runs: list[dict]) -> dict:
    """Median of every numeric key over runs; the raw seconds are kept under ``all_*``."""
    out: dict[str, object] = {}
    for key, value in runs[0].items():
        if key == "crc":  # the same pixels every run, or say so
            out[key] = value if all(run[key] == value for run in runs) else "differs between runs"
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            out[key] = value
            continue
        values = [run[key] for run in runs]
        out[key] = statistics.median(values)
        if (key.endswith("_s") and not key.endswith("per_s")) or key == "seconds":
            out[f"all_{key}"] = [round(v, 4) for v in values]
    out["n"] = len(runs)
    return out


def _child(args: list[str], cwd: Path) -> dict:
    """Run one fresh process; return its wall seconds (start-up included) and its JSON line, if any."""
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=600, check=False)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{args[:3]}... exited {proc.returncode}: {proc.stderr[-2000:]}")
    lines = proc.stdout.strip().splitlines()
    out = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"stdout": proc.stdout}
    out["process_wall_s"] = wall
    return out


def _interleaved(sides: dict[str, list[str]], n: int, cwd: Path) -> dict[str, dict]:
    """Run every side's command ``n`` times, round robin; medians per side."""
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for _ in range(n):
        for name, args in sides.items():
            runs[name].append(_child(args, cwd))
    return {name: _median_runs(values) for name, values in runs.items()}


def _round_robin(sides: dict[str, Callable[[], object]], rounds: int) -> dict[str, dict]:
    """In this process: each side ``rounds`` times, round robin; median wall and CPU seconds."""
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, func in sides.items():
            cpu, start = time.process_time(), time.perf_counter()
            func()
            runs[name].append({"seconds": time.perf_counter() - start, "cpu_s": time.process_time() - cpu})
    return {name: _median_runs(values) for name, values in runs.items()}


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).data)


def _python(code: str, *args: object) -> list[str]:
    return [sys.executable, "-c", code, *map(str, args)]


# ---------------------------------------------------------------------------- rows 1-2
def _check_convert_output(out: Path, files: list[Path], n_c: int, levels: int) -> bool:
    """Level 0 of ``out`` equals the input files (one (t, c) volume at a time) and it has ``levels`` levels."""
    import tifffile
    import zarr

    group = zarr.open_group(str(out), mode="r")
    if sorted(group.array_keys()) != [str(k) for k in range(levels)]:
        return False
    level0 = group["0"]
    return all(np.array_equal(level0[i // n_c, i % n_c], tifffile.imread(path)) for i, path in enumerate(files))


def _check_ceiling_files(out: Path, files: list[Path]) -> bool:
    """The ceiling's chunk files decode to the input blocks (it really compressed and wrote them all)."""
    import numcodecs
    import tifffile

    codec = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.BITSHUFFLE)
    count = 0
    for path in files:
        volume = tifffile.imread(path)
        for chunk in out.glob(f"{path.stem}.*"):
            z0, y0, x0 = map(int, chunk.name[len(path.stem) + 1 :].split("."))
            expected = volume[z0 : z0 + 32, y0 : y0 + 512, x0 : x0 + 512]
            decoded = np.frombuffer(codec.decode(chunk.read_bytes()), np.uint16).reshape(expected.shape)
            if not np.array_equal(decoded, expected):
                return False
            count += 1
    expected_count = len(files) * int(np.prod([-(-n // c) for n, c in zip(volume.shape, (32, 512, 512), strict=True)]))
    return count == expected_count


def rows_convert(tmp: Path, sizes: dict) -> list[dict]:
    """Rows 1 and 2, with ``bench_convert``'s input, writers and ceiling."""
    import bench_convert as bc

    n_t, n_c, stack = sizes["convert"]
    folder = tmp / "raw"
    folder.mkdir()
    files = bc._write_input(folder, n_t, n_c, stack)
    nbytes = int(np.prod(stack)) * 2 * len(files)
    bc._ceiling(files=files)  # page cache
    bc._ours(folder=bc._subset(tmp, files, 1), out=tmp / "warm-up.ome.zarr")  # imports and first-call costs
    sides = {
        "loop": lambda: bc._measure(bc._ceiling, tmp / "loop", nbytes, files=files, write=True),
        "cli": lambda: bc._measure(bc._cli, tmp / "cli.ome.zarr", nbytes, folder=folder),
        "ours 1 level": lambda: bc._measure(bc._ours, tmp / "l1.ome.zarr", nbytes, folder=folder),
        "ours 3 levels": lambda: bc._measure(bc._ours, tmp / "l3.ome.zarr", nbytes, folder=folder, levels=3),
    }
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for _ in range(sizes["rounds"]):
        for name, side in sides.items():
            runs[name].append(side())
    m = {name: _median_runs(values) for name, values in runs.items()}
    loop_ok = _check_ceiling_files(tmp / "loop", files)
    cli_ok = _check_convert_output(tmp / "cli.ome.zarr", files, n_c, 1)
    l1_ok = _check_convert_output(tmp / "l1.ome.zarr", files, n_c, 1)
    l3_ok = _check_convert_output(tmp / "l3.ome.zarr", files, n_c, 3)
    label = f"{len(files)} TIFF stacks {stack} uint16, {nbytes / 2**30:.2f} GiB"
    cli_speed = m["loop"]["seconds"] / m["cli"]["seconds"]
    cli_cpu = m["loop"]["cpu_s"] / m["cli"]["cpu_s"]
    inproc = m["loop"]["seconds"] / m["ours 1 level"]["seconds"]
    pyramid = m["ours 1 level"]["seconds"] / m["ours 3 levels"]["seconds"]
    pyramid_cpu = m["ours 1 level"]["cpu_s"] / m["ours 3 levels"]["cpu_s"]
    return [
        _case(
            1,
            f"{label}: `ome-arrow-dask convert` process vs the read + compress + write loop",
            m["cli"],
            m["loop"],
            ratio=1 / cli_speed,
            goal_value=cli_speed,
            goal_meaning="loop seconds / CLI seconds: the fraction of the loop's speed reached",
            meets_goal=cli_speed >= 0.95,
            also={"in-process export vs the loop (speed fraction)": inproc, "cpu fraction": cli_cpu},
            pixels_equal=loop_ok and cli_ok,
            now=f"{cli_speed:.2f}x of the loop (cpu {cli_cpu:.2f}x; in-process export {inproc:.2f}x)",
        ),
        _case(
            2,
            f"{label}: export with 3 levels vs 1 level (in process)",
            m["ours 3 levels"],
            m["ours 1 level"],
            ratio=1 / pyramid,
            goal_value=pyramid,
            goal_meaning="1-level seconds / 3-level seconds: 1.0 = the pyramid costs nothing",
            meets_goal=pyramid >= 0.85,
            pixels_equal=l1_ok and l3_ok,
            now=f"{pyramid:.2f}x (cpu {pyramid_cpu:.2f}x)",
        ),
    ]


# ---------------------------------------------------------------------------- row 3
def _check_loop_files(out: Path, data: np.ndarray, chunks: tuple[int, ...]) -> bool:
    """The loop's files: Blosc bytes + crc32c, decoding to each region of ``data``."""
    import google_crc32c
    import numcodecs
    from bench_zarr_write import regions

    codec = numcodecs.Blosc()
    for region in regions(data.shape, chunks):
        raw = (out / ".".join(str(s.start) for s in region)).read_bytes()
        if google_crc32c.value(raw[:-4]).to_bytes(4, "little") != raw[-4:]:
            return False
        expected = data[region]
        if not np.array_equal(np.frombuffer(codec.decode(raw[:-4]), np.uint16).reshape(expected.shape), expected):
            return False
    return True


def rows_zarr_write(tmp: Path, sizes: dict) -> list[dict]:
    """Row 3 with ``bench_zarr_write``'s writers: each zarr-python pipeline and tensorstore vs the loop."""
    import importlib.util

    import bench_zarr_write as bw

    data = bw.microscopy_like(sizes["write_shape"])
    writers: dict[str, Callable[[Path], None]] = {"loop": lambda out: bw.loop_write(data, out)}
    writers["zarr default pipeline"] = lambda out: bw.zarr_write(data, out)
    for name, module, func in [
        ("zarr + zarrs pipeline", "zarrs", lambda out: bw.zarr_write(data, out, bw.ZARRS)),
        ("tensorstore", "tensorstore", lambda out: bw.tensorstore_write(data, out)),
    ]:
        if importlib.util.find_spec(module) is not None:
            writers[name] = func
    equal: dict[str, bool] = {}
    for name, write in writers.items():  # warm-up (imports, first calls) and the pixel check
        out = tmp / f"check-{len(equal)}"
        write(out)
        equal[name] = (
            _check_loop_files(out, data, bw.CHUNKS)
            if name == "loop"
            else bool(np.array_equal(bw._read_back(out), data))
        )
        shutil.rmtree(out)

    def once(write: Callable[[Path], None]) -> Callable[[], None]:
        def go() -> None:
            write(tmp / "out")
            shutil.rmtree(tmp / "out")

        return go

    m = _round_robin({name: once(write) for name, write in writers.items()}, sizes["rounds"])
    label = f"{data.nbytes / 2**20:.0f} MiB, chunks {bw.CHUNKS}, zstd + bitshuffle + crc32c, {bw.THREADS} threads"
    results = []
    for name in writers:
        if name == "loop":
            continue
        speed = m["loop"]["seconds"] / m[name]["seconds"]
        cpu = m["loop"]["cpu_s"] / m[name]["cpu_s"]
        results.append(
            _case(
                3,
                f"zarr v3 write {label}: {name} vs the loop",
                m[name],
                m["loop"],
                ratio=1 / speed,
                goal_value=speed,
                goal_meaning="loop seconds / writer seconds: the fraction of the loop's speed reached",
                meets_goal=None,
                writer=name,
                pixels_equal=equal[name] and equal["loop"],
                now=f"{name}: {speed:.2f}x (cpu {cpu:.2f}x)",
            )
        )
    missing = {"zarr + zarrs pipeline", "tensorstore"} - set(writers)
    if missing:
        results[-1]["not_installed"] = sorted(missing)
    return results


# ---------------------------------------------------------------------------- row 4
IMPORT_CODE = """
import json, resource, sys, time
start = time.perf_counter()
exec(sys.argv[1])
seconds = time.perf_counter() - start
heavy = [m for m in sys.argv[2].split(",") if m in sys.modules]
try:  # this process's own high-water mark (ru_maxrss can carry the parent's across fork + exec)
    with open("/proc/self/status") as fh:
        rss = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
except OSError:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"import_s": seconds, "peak_rss_mib": rss, "modules": len(sys.modules), "heavy_loaded": heavy}))
"""
IMPORTS = {
    "bare python": "pass",
    "import ome_arrow_dask": "import ome_arrow_dask",
    "from ome_arrow_dask import OMEArrow": "from ome_arrow_dask import OMEArrow",
    "import zarr": "import zarr",
    "import tifffile": "import tifffile",
}


def row_import(tmp: Path, sizes: dict) -> list[dict]:
    """Row 4: the package import, and ``from ome_arrow_dask import OMEArrow``, vs zarr / tifffile, fresh processes.

    The goal is checked on ``from ome_arrow_dask import OMEArrow`` (what every script runs): with
    lazy public names (PEP 562) a bare ``import ome_arrow_dask`` alone can be cheap while the first
    name still imports everything.
    """
    heavy = ",".join(HEAVY)
    sides = {name: _python(IMPORT_CODE, statement, heavy) for name, statement in IMPORTS.items()}
    m = _interleaved(sides, sizes["import_children"], tmp)
    ours, package, floor, zarr_ = (
        m["from ome_arrow_dask import OMEArrow"],
        m["import ome_arrow_dask"],
        m["bare python"],
        m["import zarr"],
    )
    ours["rss_above_bare_python_mib"] = ours["peak_rss_mib"] - floor["peak_rss_mib"]
    slowest = max(ours["import_s"], package["import_s"])
    return [
        _case(
            4,
            "`from ome_arrow_dask import OMEArrow` in a fresh process (median), vs `import zarr`",
            ours,
            zarr_,
            ratio=ours["import_s"] / zarr_["import_s"],
            ratio_vs_tifffile=ours["import_s"] / m["import tifffile"]["import_s"],
            references={name: m[name] for name in ("import ome_arrow_dask", "import tifffile", "bare python")},
            goal_value=slowest,
            goal_meaning="seconds of the slower of `import ome_arrow_dask` and `from ome_arrow_dask import OMEArrow`",
            meets_goal=slowest <= 0.4,
            pixels_equal=None,
            now=f"`import ome_arrow_dask` {package['import_s']:.2f} s; `from ome_arrow_dask import OMEArrow` "
            f"{ours['import_s']:.2f} s, {ours['peak_rss_mib']:.0f} MiB peak RSS "
            f"(bare python {floor['peak_rss_mib']:.0f} MiB; zarr {zarr_['import_s']:.2f} s / "
            f"{zarr_['peak_rss_mib']:.0f} MiB, tifffile {m['import tifffile']['import_s']:.2f} s; heavy modules "
            f"loaded: {', '.join(ours['heavy_loaded']) or 'none'})",
        )
    ]


# ---------------------------------------------------------------------------- rows 5-6
OURS_CROP = """
import sys
from ome_arrow_dask import OMEArrow
path = sys.argv[1]
c, z0, y0, x0, dz, dy, dx, check = map(int, sys.argv[2:10])
a = OMEArrow.scan(path).slice_lazy(x0, x0 + dx, y0, y0 + dy, c_indices=[c], z_indices=range(z0, z0 + dz)).to_numpy()
if check:
    import json, zlib, numpy
    print(json.dumps({"crc": zlib.crc32(numpy.ascontiguousarray(a).data), "size": int(a.size)}))
"""
ZARR_CROP = """
import sys
import zarr
path = sys.argv[1]
c, z0, y0, x0, dz, dy, dx, check = map(int, sys.argv[2:10])
a = zarr.open_group(path, mode="r")["0"][0, c, z0 : z0 + dz, y0 : y0 + dy, x0 : x0 + dx]
if check:
    import json, zlib, numpy
    print(json.dumps({"crc": zlib.crc32(numpy.ascontiguousarray(a).data), "size": int(a.size)}))
"""


def _write_ngff(path: Path, data: np.ndarray) -> None:
    """A plain zarr-python NGFF 0.5 image (not our writer), Blosc zstd 3 + bitshuffle, one chunk per crop."""
    import zarr
    from zarr.codecs import BloscCodec

    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    codec = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
    array = root.create_array("0", shape=data.shape, chunks=ZARR_CHUNKS, dtype=data.dtype, compressors=[codec])
    array[:] = data
    kinds = ["time", "channel", "space", "space", "space"]
    axes = [
        {"name": n, "type": k} | ({"unit": "micrometer"} if k == "space" else {})
        for n, k in zip("tczyx", kinds, strict=True)
    ]
    scale = [{"type": "scale", "scale": [1.0, 1.0, 0.5, 0.1, 0.1]}]
    root.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [{"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}],
    }


def _crops(shape: tuple[int, ...]) -> list[tuple[int, int, int, int]]:
    """Every chunk-aligned 512²x16 crop (c, z0, y0, x0), in a fixed shuffled order."""
    _, n_c, n_z, n_y, n_x = shape
    dz, dy, dx = CROP
    out = [
        (c, z, y, x)
        for c in range(n_c)
        for z in range(0, n_z - dz + 1, dz)
        for y in range(0, n_y - dy + 1, dy)
        for x in range(0, n_x - dx + 1, dx)
    ]
    random.Random(0).shuffle(out)
    return out


def _crop_of(data: np.ndarray, crop: tuple[int, int, int, int]) -> np.ndarray:
    c, z, y, x = crop
    return data[0, c, z : z + CROP[0], y : y + CROP[1], x : x + CROP[2]]


def _same_crop(got: np.ndarray, data: np.ndarray, crop: tuple[int, int, int, int]) -> bool:
    return bool(np.array_equal(np.asarray(got).reshape(CROP), _crop_of(data, crop)))


def rows_crops(tmp: Path, sizes: dict) -> list[dict]:
    """Rows 5 and 6 on one generated image: an NGFF zarr (zarr-python) and an ome-arrow dataset (our writer)."""
    import bench_zarr_write as bw

    from ome_arrow_dask import OMEArrow

    data = bw.microscopy_like(sizes["ngff_shape"])
    zpath, dpath = tmp / "image.ome.zarr", tmp / "image.ome.parquet"
    _write_ngff(zpath, data)
    dataset_error = None
    try:  # our writer; if it fails, the zarr cases still run and the dataset case reports the error
        OMEArrow(data, dim_order="TCZYX").export("parquet", out=dpath, chunk_shape=ZARR_CHUNKS)
    except Exception as exc:
        traceback.print_exc()
        dataset_error = f"writing the Parquet dataset: {type(exc).__name__}: {exc}"
    crops = _crops(data.shape)
    process = _row_crop_process(tmp, sizes, data, zpath, crops[0])
    return [process, *_row_warm_crops(sizes, data, zpath, None if dataset_error else dpath, crops, dataset_error)]


def _row_crop_process(tmp: Path, sizes: dict, data: np.ndarray, zpath: Path, crop: tuple[int, ...]) -> dict:
    """Row 5: whole processes. The first run of each script checks the crop (it prints a crc32); timed runs do not."""
    args = [zpath, *crop, *CROP]
    checks = {name: _child(_python(code, *args, 1), tmp) for name, code in (("ours", OURS_CROP), ("zarr", ZARR_CROP))}
    expected = _crc(_crop_of(data, crop))
    same = all(check.get("crc") == expected for check in checks.values())
    sides = {"ours": _python(OURS_CROP, *args, 0), "zarr": _python(ZARR_CROP, *args, 0)}
    m = _interleaved(sides, sizes["children"], tmp)
    ratio = m["ours"]["process_wall_s"] / m["zarr"]["process_wall_s"]
    return _case(
        5,
        f"script: open NGFF zarr {'x'.join(map(str, data.shape))} uint16 and read one chunk-aligned 512²x16 crop, "
        "whole process, vs zarr direct (`open_group(p)['0'][...]`)",
        m["ours"],
        m["zarr"],
        ratio=ratio,
        goal_value=ratio,
        goal_meaning="ours process seconds / zarr-direct process seconds",
        meets_goal=ratio <= 1.5,
        pixels_equal=same,
        now=f"{ratio:.2f}x ({m['ours']['process_wall_s']:.2f} s vs {m['zarr']['process_wall_s']:.2f} s)",
    )


def _crop_readers(zpath: Path, dpath: Path | None) -> dict[str, Callable[[tuple[int, int, int, int]], np.ndarray]]:
    """Row 6's readers; each opens its store afresh for every crop."""
    import zarr
    from ome_arrow import OMEArrowDataset

    from ome_arrow_dask import OMEArrow

    dz, dy, dx = CROP

    def ours(path: Path, crop: tuple[int, int, int, int]) -> np.ndarray:
        c, z, y, x = crop
        return (
            OMEArrow.scan(path).slice_lazy(x, x + dx, y, y + dy, c_indices=[c], z_indices=range(z, z + dz)).to_numpy()
        )

    def zarr_direct(crop: tuple[int, int, int, int]) -> np.ndarray:
        c, z, y, x = crop
        return zarr.open_group(str(zpath), mode="r")["0"][0, c, z : z + dz, y : y + dy, x : x + dx]

    def ome_arrow(crop: tuple[int, int, int, int]) -> np.ndarray:
        c, z, y, x = crop
        dataset = OMEArrowDataset(str(dpath))
        return dataset.read_region(y=slice(y, y + dy), x=slice(x, x + dx), c=c, z=slice(z, z + dz))

    readers = {"ours, NGFF zarr": lambda crop: ours(zpath, crop), "zarr direct": zarr_direct}
    if dpath is not None:
        readers["ours, Parquet dataset"] = lambda crop: ours(dpath, crop)
        readers[OME_ARROW_READER] = ome_arrow
    return readers


OME_ARROW_READER = "ome-arrow 0.1.0 OMEArrowDataset.read_region"


def _row_warm_crops(
    sizes: dict,
    data: np.ndarray,
    zpath: Path,
    dpath: Path | None,
    crops: list[tuple[int, int, int, int]],
    dataset_error: str | None,
) -> list[dict]:
    """Row 6: in this process, store reopened per crop; each iteration takes the next crop, for every reader."""
    sides = _crop_readers(zpath, dpath)
    warm, timed = crops[-1], crops[: min(sizes["warm_crops"], len(crops) - 1)]
    equal = {name: _same_crop(side(warm), data, warm) for name, side in sides.items()}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for crop in timed:  # each result is checked outside the timing
        for name, side in sides.items():
            start = time.perf_counter()
            got = side(crop)
            times[name].append(time.perf_counter() - start)
            equal[name] = equal[name] and _same_crop(got, data, crop)
    m = {name: {"seconds": statistics.median(v), "min_s": min(v), "n": len(v)} for name, v in times.items()}
    label = f"{len(timed)} distinct chunk-aligned 512²x16 crops of {'x'.join(map(str, data.shape))} uint16"
    results = []
    for name, what in [("ours, NGFF zarr", "NGFF zarr"), ("ours, Parquet dataset", "Parquet dataset")]:
        if name not in sides:
            results.append(_case(6, f"warm crop: ours on the {what} vs zarr direct", {}, {}, error=dataset_error))
            continue
        ratio = m[name]["seconds"] / m["zarr direct"]["seconds"]
        now = f"{what}: {ratio:.2f}x ({m[name]['seconds'] * 1e3:.1f} ms vs {m['zarr direct']['seconds'] * 1e3:.1f} ms)"
        extra: dict[str, object] = {}
        if name == "ours, Parquet dataset":
            extra = {
                "ome_arrow": m[OME_ARROW_READER] | {"pixels_equal": equal[OME_ARROW_READER]},
                "ratio_vs_ome_arrow": m[name]["seconds"] / m[OME_ARROW_READER]["seconds"],
            }
            now += f"; ome-arrow read_region {m[OME_ARROW_READER]['seconds'] * 1e3:.1f} ms"
        results.append(
            _case(
                6,
                f"warm crop, store reopened per crop, {label}: ours on the {what} vs zarr direct on the NGFF zarr "
                "(same pixels, same chunks)",
                m[name],
                m["zarr direct"],
                ratio=ratio,
                goal_value=ratio,
                goal_meaning="median ours seconds / median zarr-direct seconds per crop",
                meets_goal=ratio <= 1.1,
                pixels_equal=equal[name] and equal["zarr direct"],
                now=now,
                **extra,
            )
        )
    return results


# ---------------------------------------------------------------------------- rows 7-8
OURS_FIRST = """
import json, sys, time
start = time.perf_counter()
from ome_arrow_dask import OMEArrow
imported = time.perf_counter()
folder, pattern = sys.argv[1], sys.argv[2]
t, z, y, x = map(int, sys.argv[3:7])
def plane():
    return OMEArrow.scan(folder, pattern=pattern).slice_lazy(0, x, 0, y, t_indices=[t], z_indices=[z]).to_numpy()
a = plane()
first = time.perf_counter() - imported
warm = []
for _ in range(5):
    s = time.perf_counter()
    plane()
    warm.append(time.perf_counter() - s)
import zlib, numpy
crc = zlib.crc32(numpy.ascontiguousarray(a).data)
print(json.dumps({"import_s": imported - start, "first_call_s": first, "warm_s": sorted(warm)[2], "crc": crc}))
"""
TIFFFILE_FIRST = """
import json, sys, time
start = time.perf_counter()
import tifffile
imported = time.perf_counter()
path, z = sys.argv[1], int(sys.argv[2])
def plane():
    with tifffile.TiffFile(path) as tif:
        return tif.pages[z].asarray()
a = plane()
first = time.perf_counter() - imported
warm = []
for _ in range(5):
    s = time.perf_counter()
    plane()
    warm.append(time.perf_counter() - s)
import zlib, numpy
crc = zlib.crc32(numpy.ascontiguousarray(a).data)
print(json.dumps({"import_s": imported - start, "first_call_s": first, "warm_s": sorted(warm)[2], "crc": crc}))
"""


def _write_stack(folder: Path, n: int, stack: tuple[int, int, int]) -> list[Path]:
    """``n`` ZYX uint16 files named ``stack_t{t:03d}.tif``; file t holds ``base + t``."""
    import tifffile

    base = np.random.default_rng(0).integers(100, 4000, size=stack, dtype=np.uint16)
    files = []
    for t in range(n):
        path = folder / f"stack_t{t:03d}.tif"
        tifffile.imwrite(path, base + np.uint16(t), photometric="minisblack", metadata={"axes": "ZYX"})
        files.append(path)
    return files


def rows_stack(tmp: Path, sizes: dict) -> list[dict]:
    """Rows 7 and 8 on one generated folder of 60 ZYX TIFF files."""
    import tifffile

    from ome_arrow_dask import OMEArrow

    n, stack = sizes["stack"]
    folder = tmp / "stack"
    folder.mkdir()
    files = _write_stack(folder, n, stack)
    nbytes = int(np.prod(stack)) * 2 * n
    label = f"{n} ZYX files of {stack} uint16 ({nbytes / 1e9:.2f} GB)"
    t, z = n * 3 // 5, stack[0] // 2
    expected = _crc(tifffile.imread(files[t], key=z))
    m = _interleaved(
        {
            "ours": _python(OURS_FIRST, folder, STACK_PATTERN, t, z, stack[1], stack[2]),
            "tifffile": _python(TIFFFILE_FIRST, files[t], z),
        },
        sizes["children"],
        tmp,
    )
    first = m["ours"]["first_call_s"]
    results = [
        _case(
            7,
            f"one plane (t={t}, z={z}) of {label}, first call after import in a fresh process, "
            "vs a `tifffile.TiffFile(f).pages[z].asarray()` first call after `import tifffile`",
            m["ours"],
            m["tifffile"],
            ratio=first / m["tifffile"]["first_call_s"],
            ratio_first_vs_warm_repeat=first / m["ours"]["warm_s"],
            goal_value=first,
            goal_meaning="seconds of the first scan().slice_lazy().to_numpy() after import",
            meets_goal=first <= 0.005,
            pixels_equal=m["ours"]["crc"] == expected == m["tifffile"]["crc"],
            now=f"{first * 1e3:.1f} ms (warm repeat {m['ours']['warm_s'] * 1e3:.1f} ms; tifffile page read "
            f"{m['tifffile']['first_call_s'] * 1e3:.1f} ms first, {m['tifffile']['warm_s'] * 1e3:.1f} ms warm)",
        )
    ]

    totals: dict[str, int] = {}

    def ours() -> None:
        totals["ours"] = int(OMEArrow.scan(folder, pattern=STACK_PATTERN).to_dask().sum().compute())

    def loop() -> None:
        totals["loop"] = sum(int(tifffile.imread(f).sum()) for f in sorted(folder.glob("stack_t*.tif")))

    ours(), loop()  # warm-up: page cache, imports, first calls
    m = _round_robin({"ours": ours, "loop": loop}, sizes["rounds"])
    expected_sum = sum(int(tifffile.imread(f).sum(dtype=np.uint64)) for f in files)
    ratio = m["ours"]["seconds"] / m["loop"]["seconds"]
    cpu = m["ours"]["cpu_s"] / m["loop"]["cpu_s"]
    results.append(
        _case(
            8,
            f"full read of {label}: scan().to_dask().sum().compute() (default scheduler) vs a 1-thread "
            "`tifffile.imread` loop summing each file",
            m["ours"],
            m["loop"],
            ratio=ratio,
            goal_value=ratio,
            goal_meaning="ours seconds / loop seconds (warm page cache)",
            meets_goal=ratio <= 1.1,
            pixels_equal=totals["ours"] == totals["loop"] == expected_sum,
            now=f"{ratio:.2f}x ({m['ours']['seconds']:.2f} s vs {m['loop']['seconds']:.2f} s; cpu {cpu:.2f}x)",
        )
    )
    return results


# ---------------------------------------------------------------------------- row 9
TIFFFILE_INFO = """
import sys
import tifffile
with tifffile.TiffFile(sys.argv[1]) as tif:
    series = tif.series[0]
    print(series.axes, series.shape, series.dtype, tif.is_ome)
"""


def row_info(tmp: Path, sizes: dict) -> list[dict]:
    """Row 9: the whole ``ome-arrow-dask info`` process vs a tifffile script printing the same header."""
    import tifffile

    shape = (2, 16, 512, 512)
    path = tmp / "image.ome.tiff"
    tifffile.imwrite(
        path,
        np.zeros(shape, np.uint16),
        ome=True,
        photometric="minisblack",
        metadata={"axes": "CZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1, "PhysicalSizeZ": 0.5},
    )
    script = Path(sys.executable).with_name("ome-arrow-dask")
    ours = [str(script)] if script.exists() else [sys.executable, "-m", "ome_arrow_dask.cli"]
    sides = {"ours": [*ours, "info", str(path)], "tifffile": _python(TIFFFILE_INFO, path), "bare": _python("pass")}
    checks = {name: _child(args, tmp)["stdout"] for name, args in sides.items() if name != "bare"}
    same = f"(1, {', '.join(map(str, shape))})" in checks["ours"] and str(shape) in checks["tifffile"]
    m = _interleaved(sides, sizes["children"], tmp)
    seconds = m["ours"]["process_wall_s"]
    return [
        _case(
            9,
            f"`ome-arrow-dask info` on a {'x'.join(map(str, shape))} OME-TIFF, whole process, vs a tifffile script",
            m["ours"],
            m["tifffile"],
            ratio=seconds / m["tifffile"]["process_wall_s"],
            bare_python=m["bare"],
            goal_value=seconds,
            goal_meaning="seconds of the whole `ome-arrow-dask info` process",
            meets_goal=seconds <= 0.5,
            pixels_equal=same,
            now=f"{seconds:.2f} s (tifffile script {m['tifffile']['process_wall_s']:.2f} s, "
            f"bare python {m['bare']['process_wall_s']:.2f} s)",
        )
    ]


# ---------------------------------------------------------------------------- entry points
def run(quick: bool) -> list[dict]:
    sizes = QUICK if quick else FULL
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_speed_") as tmp_name:
        for rows, func in [
            ((1, 2), rows_convert),
            ((3,), rows_zarr_write),
            ((4,), row_import),
            ((5, 6), rows_crops),
            ((7, 8), rows_stack),
            ((9,), row_info),
        ]:
            tmp = Path(tmp_name) / func.__name__
            tmp.mkdir()
            started = time.perf_counter()
            try:
                cases = func(tmp, sizes)
            except Exception as exc:  # one broken row must not hide the others
                traceback.print_exc()
                cases = [
                    _case(row, f"{func.__name__} failed", {}, {}, error=f"{type(exc).__name__}: {exc}") for row in rows
                ]
            for case in cases:
                case["row_seconds"] = round(time.perf_counter() - started, 1)
            results.extend(cases)
            shutil.rmtree(tmp, ignore_errors=True)
            print(f"#   bench_speed {func.__name__}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return results


def table(results: list[dict], note: str = "") -> str:
    """The issue's table as markdown: one line per case, columns now / goal / status."""
    lines = ["| # | job | now | goal | status |", "|---|---|---|---|---|"]
    for case in sorted((c for c in results if "row" in c), key=lambda c: c["row"]):
        if "error" in case:
            now, status = f"error: {case['error'][:120]}", "error"
        else:
            now = case["now"] + (f" {note}" if note else "")
            met = case.get("meets_goal")
            status = "-" if met is None else ("met" if met else "not met")
            if case.get("pixels_equal") is False:
                status += "; PIXELS DIFFER"
        lines.append(f"| {case['row']} | {case['job']} | {now} | {case['goal']} | {status} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Issue 19's speed table (see the module docstring).")
    parser.add_argument("--quick", action="store_true", help="small sizes (about 2-3 minutes)")
    parser.add_argument("--table", type=Path, help="render the bench_speed cases of a saved run.py JSON and exit")
    args = parser.parse_args()
    if args.table:
        report = json.loads(args.table.read_text())
        print(table([c for c in report["results"] if str(c.get("case", "")).startswith("issue 19 row")]))
        raise SystemExit(0)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    found = run(quick=args.quick)
    print(json.dumps(found, indent=1, default=str))
    print(table(found), file=sys.stderr)
