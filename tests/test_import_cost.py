"""What importing the package and reading a small crop cost in imported modules (no timings).

Each check runs in a fresh interpreter (a subprocess) and asserts which heavy libraries end
up in ``sys.modules``: ``import ome_arrow_dask`` imports none of them, and a small crop of
a TIFF, a TIFF stack or an OME-Zarr imports only its format's reader, never ``dask.array``
(no graph is built), ``distributed`` (no scheduler looks for a client) or pyarrow.
Timings live in ``benchmarks/``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile

import ome_arrow_dask

HEAVY = (
    "dask",
    "dask.array",
    "distributed",
    "jax",
    "napari",
    "pandas",
    "pyarrow",
    "scipy",
    "tifffile",
    "torch",
    "xarray",
    "zarr",
)
"""Libraries whose import costs 0.1-1 s each (``dask`` itself is the light core: tokenize, config)."""

NEVER_FOR_A_CROP = {"dask.array", "distributed", "jax", "napari", "pandas", "pyarrow", "scipy", "torch", "xarray"}
"""Libraries a small crop of a TIFF, a stack or an OME-Zarr never needs."""


def imported_after(code: str) -> set[str]:
    """The :data:`HEAVY` modules a fresh interpreter holds after running ``code``."""
    probe = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import json as _json, sys as _sys
        print("MODULES=" + _json.dumps(sorted(m for m in {HEAVY!r} if m in _sys.modules)))
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("MODULES="))
    return set(json.loads(line.removeprefix("MODULES=")))


def test_every_public_name_resolves() -> None:
    for name in ome_arrow_dask.__all__:
        assert getattr(ome_arrow_dask, name) is not None, name
    assert set(ome_arrow_dask.__all__) <= set(dir(ome_arrow_dask))
    assert set(ome_arrow_dask.__all__) == {*ome_arrow_dask._EXPORTS, "__version__"}
    from ome_arrow_dask import OMEArrow, open_source, write_plate
    from ome_arrow_dask.core import OMEArrow as core_plan

    assert OMEArrow is core_plan and callable(open_source) and callable(write_plate)


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        ome_arrow_dask.no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        exec("from ome_arrow_dask import no_such_name")


def test_import_package_imports_no_heavy_library() -> None:
    assert imported_after("import ome_arrow_dask") == set()


def test_public_names_listed_without_importing_them() -> None:
    assert imported_after("import ome_arrow_dask; assert 'OMEArrow' in dir(ome_arrow_dask)") == set()


def test_import_plan_class_needs_only_dask_core() -> None:
    assert imported_after("from ome_arrow_dask import OMEArrow") <= {"dask"}


def test_parquet_source_classes_still_importable() -> None:
    from ome_arrow_dask.sources._parquet_struct import StructSource
    from ome_arrow_dask.sources.parquet import DatasetSource as Dataset
    from ome_arrow_dask.sources.parquet import StructSource as Struct

    assert Struct is StructSource and Dataset.__name__ == "DatasetSource"


@pytest.fixture(scope="module")
def small_tiff(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    pixels = np.arange(3 * 64 * 48, dtype="u2").reshape(3, 64, 48)
    path = tmp_path_factory.mktemp("tiff") / "small.ome.tiff"
    tifffile.imwrite(path, pixels, ome=True, metadata={"axes": "ZYX"})
    return path, pixels


def test_small_tiff_crop_imports_only_tifffile(small_tiff: tuple[Path, np.ndarray]) -> None:
    path, pixels = small_tiff
    expected = pixels[1, 5:20, 3:30].tolist()
    modules = imported_after(
        f"""
        from ome_arrow_dask import OMEArrow
        crop = OMEArrow.scan({str(path)!r}).slice_lazy(3, 30, 5, 20, z_indices=[1]).to_numpy()
        assert crop[0, 0, 0].tolist() == {expected!r}
        """
    )
    assert "tifffile" in modules
    assert not modules & (NEVER_FOR_A_CROP | {"zarr"})


def test_small_tiff_collect_imports_only_tifffile(small_tiff: tuple[Path, np.ndarray]) -> None:
    path, _ = small_tiff
    modules = imported_after(
        f"""
        from ome_arrow_dask import OMEArrow
        plan = OMEArrow.scan({str(path)!r}).slice_lazy(0, 8, 0, 8).collect()
        assert not plan.is_lazy and plan.shape == (1, 1, 3, 8, 8)
        """
    )
    assert not modules & (NEVER_FOR_A_CROP | {"zarr"})


def test_stack_plane_imports_only_tifffile(tmp_path: Path) -> None:
    for t in range(3):
        tifffile.imwrite(tmp_path / f"img_t{t}.tif", np.full((2, 16, 16), t, dtype="u1"))
    modules = imported_after(
        f"""
        from ome_arrow_dask import OMEArrow
        plan = OMEArrow.scan({str(tmp_path / "img_t{t}.tif")!r})
        plane = plan.slice_lazy(0, 16, 0, 16, t_indices=[2]).to_numpy()
        assert plane.shape[0] == 1 and (plane == 2).all()
        """
    )
    assert not modules & (NEVER_FOR_A_CROP | {"zarr"})


def test_small_zarr_crop_imports_only_zarr(tmp_path: Path) -> None:
    from ome_arrow_dask import OMEArrow

    pixels = np.arange(2 * 32 * 32, dtype="u2").reshape(1, 1, 2, 32, 32)
    out = tmp_path / "small.ome.zarr"
    OMEArrow(pixels).export("ome-zarr", out=out)
    expected = pixels[0, 0, :, 4:20, 8:24].tolist()
    modules = imported_after(
        f"""
        from ome_arrow_dask import OMEArrow
        crop = OMEArrow.scan({str(out)!r}).slice_lazy(8, 24, 4, 20).to_numpy()
        assert crop[0, 0].tolist() == {expected!r}
        """
    )
    assert "zarr" in modules
    assert not modules & (NEVER_FOR_A_CROP | {"tifffile"})


def test_cli_info_of_a_tiff_imports_only_tifffile(small_tiff: tuple[Path, np.ndarray]) -> None:
    """``python -m ome_arrow_dask.cli info``: ``-X importtime`` lists every module the process imported."""
    path, _ = small_tiff
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ome_arrow_dask.cli", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "shape (TCZYX): (1, 1, 3, 64, 48)" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "tifffile" in imported
    assert not imported & (NEVER_FOR_A_CROP | {"zarr"})


def test_compute_runs_locally_without_importing_distributed() -> None:
    """Plans with a dask-array source go through the scheduler: the default one, named, so no client search."""
    modules = imported_after(
        """
        import numpy as np
        import dask.array as da
        from ome_arrow_dask import OMEArrow
        from ome_arrow_dask.graph import compute, run_graph

        array = da.arange(4 * 16 * 16, chunks=64).reshape(1, 1, 4, 16, 16)
        expected = np.arange(4 * 16 * 16).reshape(1, 1, 4, 16, 16)
        assert (OMEArrow(array).astype("f4").to_numpy() == expected).all()
        assert compute(array.sum()) == expected.sum()
        run_graph(array.sum(), progress=False)
        """
    )
    assert "dask.array" in modules
    assert "distributed" not in modules


def _where() -> str:
    import distributed

    try:
        distributed.get_worker()
    except ValueError:
        return "local"
    return "worker"


WHERE_RAN: list[str] = []


def _record_where() -> None:
    WHERE_RAN.append(_where())  # by reference: the in-process worker appends to this module's list


def test_compute_keeps_explicit_and_configured_schedulers() -> None:
    import dask

    from ome_arrow_dask.graph import compute

    calls = []

    def recording_get(graph: object, keys: object, **kwargs: object) -> object:
        calls.append(keys)
        return dask.get(graph, keys)

    assert compute(dask.delayed(_where)(), scheduler=recording_get) == "local"
    with dask.config.set(scheduler=recording_get):
        assert compute(dask.delayed(_where)()) == "local"
    assert len(calls) == 2


def test_compute_and_run_graph_use_an_active_client() -> None:
    import dask
    import distributed

    from ome_arrow_dask.graph import compute, run_graph

    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0"):
        assert compute(dask.delayed(_where)()) == "worker"
        WHERE_RAN.clear()
        run_graph(dask.delayed(_record_where)(), progress=False)
        assert WHERE_RAN == ["worker"]
    assert compute(dask.delayed(_where)()) == "local"
