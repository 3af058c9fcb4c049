"""ome-arrow 0.1.0 drop-in compatibility: its own tests through a name-only shim, plus regressions.

The slow test downloads ome-arrow 0.1.0's sdist (cached in a temporary folder) and runs its
tests/test_core.py and tests/test_tensor.py against ome_arrow_dask; an unreachable package
index is a failure, not a skip.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ome_arrow_dask import LazyTensorView, OMEArrow, TensorView
from ome_arrow_dask.arrow_interop import to_ome_parquet
from ome_arrow_dask.arrow_schema import OME_ARROW_STRUCT
from ome_arrow_dask.errors import CorruptInputError, LayoutError, OmeArrowDaskError, SelectionError

sys.path.insert(0, str(Path(__file__).parent / "compat"))
import run_ome_arrow_compat as compat

README = Path(__file__).parents[1] / "README.md"


def _record(planes: int = 2) -> dict:
    pixels = [list(range(c * 100, c * 100 + 12)) for c in range(planes)]
    return {
        "type": "ome.arrow",
        "version": "0.1.0",
        "id": "img",
        "name": "img",
        "image_type": "image",
        "pixels_meta": {
            "dimension_order": "XYCT",
            "type": "uint16",
            "size_x": 4,
            "size_y": 3,
            "size_z": 1,
            "size_c": planes,
            "size_t": 1,
        },
        "planes": [{"z": 0, "t": 0, "c": c, "pixels": p} for c, p in enumerate(pixels)],
        "masks": None,
    }


@pytest.mark.slow
def test_ome_arrow_own_tests_pass_through_the_shim():
    """ome-arrow's test_core.py / test_tensor.py: only allow-listed failures, and none listed that passes."""
    assert compat.main([]) == 0


def test_allowlist_is_commented_and_kind_a_entries_are_in_readme():
    entries = compat.load_allowlist()
    assert entries and all(e.reason for e in entries)
    section = README.read_text(encoding="utf-8").split("### Differences from ome-arrow 0.1.0 (on purpose)")[1]
    section = section.split("\n### ")[0]
    for entry in (e for e in entries if e.kind == "a"):
        name = re.sub(r"\[.*$", "", entry.pattern.split("::")[1])
        assert f"`{name}`" in section, f"allow-list entry {entry.pattern} (kind a) has no README row"


def test_allowlist_parser_rejects_an_entry_without_comment(tmp_path):
    path = tmp_path / "allow.txt"
    path.write_text("tests/test_core.py::test_x\n")
    with pytest.raises(ValueError, match="no '# \\(kind\\) reason' comment"):
        compat.load_allowlist(path)


def test_shim_forwards_names_and_refuses_missing_ones_clearly(tmp_path):
    shim = compat.write_shim(tmp_path / "shim")
    sys.path.insert(0, str(shim))
    saved = {k: v for k, v in sys.modules.items() if k == "ome_arrow" or k.startswith("ome_arrow.")}
    for key in saved:
        del sys.modules[key]
    try:
        import ome_arrow
        import ome_arrow.core
        from ome_arrow import ingest
        from ome_arrow.meta import OME_ARROW_STRUCT as struct

        assert Path(ome_arrow.__file__).parent.parent == shim
        assert ome_arrow.core.OMEArrow is OMEArrow and struct is OME_ARROW_STRUCT
        with pytest.raises(AttributeError, match="not available in ome_arrow_dask"):
            _ = ingest.from_torch_array
        with pytest.raises(ImportError, match="not available in ome_arrow_dask"):
            from ome_arrow.transform import slice_ome_arrow  # noqa: F401
    finally:
        sys.path.remove(str(shim))
        for key in [k for k in sys.modules if k == "ome_arrow" or k.startswith("ome_arrow.")]:
            del sys.modules[key]
        sys.modules.update(saved)


def test_compare_flags_unlisted_failures_and_passing_entries():
    entries = [compat.Entry("t.py::test_a[*]", "b", "why", 1), compat.Entry("t.py::test_b", "a", "why", 3)]
    outcomes = {"t.py::test_a[1]": ["failed", ""], "t.py::test_b": ["passed", ""], "t.py::test_c": ["failed", "E x"]}
    problems = compat.compare(outcomes, entries)
    assert any("unexpected failure: t.py::test_c" in p for p in problems)
    assert any("test_b now passes" in p for p in problems)
    assert not any("test_a" in p for p in problems)


# ---------------------------------------------------------------------- regressions of issue 16
def test_record_dict_input_and_data_roundtrip():
    img = OMEArrow(_record())
    assert img.shape == (1, 2, 1, 3, 4) and img.dtype == np.uint16
    np.testing.assert_array_equal(img.to_numpy()[0, 1, 0], np.arange(100, 112).reshape(3, 4))
    data = img.data
    assert isinstance(data, pa.StructScalar)
    np.testing.assert_array_equal(OMEArrow(data).to_numpy(), img.to_numpy())
    bad = _record()
    bad["planes"][0]["pixels"] = [-1] * 12
    with pytest.raises(CorruptInputError, match="uint16"):
        OMEArrow(bad)
    with pytest.raises(OmeArrowDaskError, match="dim_order is supported only"):
        OMEArrow(_record(), dim_order="YX")


def test_info_is_exactly_ome_arrows():
    info = OMEArrow(np.zeros((1, 3, 5, 4, 6), np.uint16)).info()
    assert info == {
        "shape": (1, 3, 5, 4, 6),
        "type": "3D image (z-stack)",
        "channels": 3,
        "is_multichannel": True,
        "summary": "3D image (z-stack), multi-channel (3 channels) - shape (T=1, C=3, Z=5, Y=4, X=6)",
    }


def test_collect_in_place_and_slice_lazy_in_memory(tmp_path):
    path = tmp_path / "r.parquet"
    to_ome_parquet(_record(), path, column_name="ome_arrow")
    plan = OMEArrow.scan(path)
    assert plan.is_lazy
    crop = plan.slice_lazy(0, 2, 0, 2)
    assert plan.collect() is plan and not plan.is_lazy and crop.is_lazy
    np.testing.assert_array_equal(crop.to_numpy()[0, 0, 0], [[0, 1], [4, 5]])
    assert crop.is_lazy  # to_numpy() does not change the plan
    eager = OMEArrow(np.arange(42, dtype=np.uint16).reshape(1, 1, 1, 6, 7)).slice_lazy(1, 5, 1, 4)
    assert not eager.is_lazy and eager.info()["shape"] == (1, 1, 1, 3, 4)
    np.testing.assert_array_equal(eager.collect().to_numpy()[0, 0, 0], np.arange(42).reshape(6, 7)[1:4, 1:5])


def test_tensor_view_compat(tmp_path):
    path = tmp_path / "r.parquet"
    to_ome_parquet(_record(), path, column_name="ome_arrow")
    lazy = OMEArrow.scan(path).tensor_view(t=0, z=0, c=0)
    assert isinstance(lazy, LazyTensorView) and lazy.with_layout("YX").layout == "YX"
    assert lazy.with_layout("YX").collect().layout == "HW"
    two_rows = pa.array([_record(), _record(3)], type=OME_ARROW_STRUCT)
    assert TensorView(two_rows).shape[0] == 2  # row 0 (2 channels), as in ome-arrow
    view = OMEArrow(np.zeros((2, 1, 1, 2, 2), np.uint16)).tensor_view(layout="CYX")  # drops T of size 2
    with pytest.raises(LayoutError, match="drops non-singleton"):
        view.to_numpy()
    with pytest.raises(SelectionError, match="Provide either z or roi3d"):
        OMEArrow(np.zeros((1, 1, 3, 4, 5), np.uint16)).tensor_view(z=0, roi3d=(0, 0, 0, 2, 2, 1))


def test_view_matplotlib_reads_one_plane_and_rejects_unknown_modes():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    img = OMEArrow(np.arange(2 * 12, dtype=np.float32).reshape(1, 2, 1, 3, 4))
    fig, _, image = img.view(tcz=(0, 1, 0), show=False)
    assert isinstance(fig, matplotlib.figure.Figure)
    np.testing.assert_array_equal(image.get_array(), np.arange(12, 24).reshape(3, 4))
    with pytest.raises(ValueError, match="Unsupported view mode"):
        img.view(how="foo")


def test_view_pyvista_missing_says_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pyvista(name, *args, **kwargs):
        if name == "pyvista":
            raise ImportError("No module named 'pyvista'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyvista)
    monkeypatch.delitem(sys.modules, "pyvista", raising=False)
    with pytest.raises(ImportError, match="pip install pyvista"):
        OMEArrow(np.zeros((1, 1, 2, 3, 4), np.uint16)).view(how="pyvista", show=False)


def test_to_ome_parquet_writes_a_record_ome_arrow_reads(tmp_path):
    ome_arrow = pytest.importorskip("ome_arrow")
    path = tmp_path / "rec.ome.parquet"
    to_ome_parquet(_record(), path)
    theirs = ome_arrow.OMEArrow(str(path), column_name="image")
    np.testing.assert_array_equal(theirs.export(how="numpy"), OMEArrow(_record()).to_numpy())
