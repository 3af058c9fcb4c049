"""Folders of TIFFs named by a pattern: the contract, the da.block oracle, errors and samples."""

from __future__ import annotations

import itertools
import os
import pickle

import dask.array as da
import numpy as np
import pytest
import tifffile
from source_contract import SourceContract

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import (
    InconsistentInputError,
    InputChangedError,
    MissingDataWarning,
    OmeArrowDaskError,
    UnsafePathError,
)
from ome_arrow_dask.sources import open_source
from ome_arrow_dask.sources import stack as S

LLSM = (
    "ex6-2_CamA_ch{c}_CAM1_stack{t:04d}_{wl}nm_{ms:07d}msec_{abs:010d}msecAbs_{x:03d}x_{y:03d}y_{z:03d}z_{t:04d}t.tif"
)
LLSM_TEMPLATE = "ex6-2_CamA_ch{c}_CAM1_stack{t}_{}nm_{}msec_{}msecAbs_{x}x_{y}y_{z}z_{}t.tif"


def to5d(array: np.ndarray, axes: str) -> np.ndarray:
    """Oracle reshaping of one file's pixels to TCZYX (tifffile axes)."""
    letters = {"Z": "Z", "Q": "Z", "S": "C", "C": "C", "T": "T", "Y": "Y", "X": "X"}
    order = [letters[a] for a in axes]
    out = np.moveaxis(array, range(len(order)), [sorted(order, key="TCZYX".index).index(a) for a in order])
    present = sorted(order, key="TCZYX".index)
    return out.reshape([out.shape[present.index(a)] if a in present else 1 for a in "TCZYX"])


def write_grid(folder, name_of, grid_shape, file_shape, *, dtype="uint16", axes=None, skip=(), seed=0):
    """Write one TIFF per grid position; return the da.block oracle (zeros where skipped)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    blocks = np.empty(grid_shape, dtype=object)
    for pos in itertools.product(*(range(n) for n in grid_shape)):
        data = rng.integers(0, 60000, size=file_shape).astype(dtype)
        if pos in skip:
            blocks[pos] = np.zeros_like(to5d(data, axes or "YX"[-data.ndim :]))
            continue
        metadata = {"axes": axes} if axes else None
        tifffile.imwrite(folder / name_of(*pos), data, metadata=metadata, photometric="minisblack")
        blocks[pos] = to5d(tifffile.imread(folder / name_of(*pos)), axes or "YX")
    return da.block(blocks.tolist()).compute()


def llsm_name(t, c, z, y, x):
    ms = 1000 * t + 10 * c + 4 * z + 2 * y + x
    return LLSM.format(c=c, t=t, wl=(488, 560)[c], ms=ms, abs=ms + 123456, x=x, y=y, z=z)


def plane_name(t, c, z, y, x):
    return f"img_z{z}.tif"


def bracket_name(t, c, z, y, x):
    return f"E99_C{(111, 222)[c]}_ZS{z:03d}.tif"


def opera_name(t, c, z, y, x):
    return f"r02c05f01p{z + 1:02d}-ch{c + 1}sk{t + 1}fk1fl1.tiff"


# --------------------------------------------------------------------------- contract variants
class TestUnpaddedPlanes(SourceContract):
    def make_source(self, tmp_path):
        expected = write_grid(tmp_path / "d", plane_name, (1, 1, 12, 1, 1), (5, 7))
        return open_source(tmp_path / "d", pattern="img_z{z}.tif"), expected


class TestLLSMTileGridOfStacks(SourceContract):
    def make_source(self, tmp_path):
        expected = write_grid(tmp_path / "d", llsm_name, (2, 2, 2, 2, 2), (2, 6, 7), axes="ZYX")
        return open_source(tmp_path / "d", pattern=LLSM_TEMPLATE), expected


class TestBrackets(SourceContract):
    def make_source(self, tmp_path):
        expected = write_grid(tmp_path / "d", bracket_name, (1, 2, 6, 1, 1), (6, 5), dtype="float32")
        return open_source(tmp_path / "d" / "E99_C<111,222>_ZS<000-005>.tif"), expected


class TestRegex(SourceContract):
    def make_source(self, tmp_path):
        expected = write_grid(tmp_path / "d", llsm_name, (2, 2, 1, 1, 1), (4, 4), dtype="int16")
        return open_source(tmp_path / "d", pattern=r".*_ch(?P<c>\d+)_.*_stack(?P<t>\d+)_.*\.tif"), expected


class TestGlobInference(SourceContract):
    def make_source(self, tmp_path):
        expected = write_grid(tmp_path / "d", opera_name, (2, 2, 3, 1, 1), (5, 4), dtype="uint8")
        return open_source(tmp_path / "d" / "*.tiff"), expected


class TestMissingFilledWithZeros(SourceContract):
    def make_source(self, tmp_path):
        skip = {(0, 1, 2, 0, 0), (0, 0, 0, 0, 0)}
        expected = write_grid(tmp_path / "d", bracket_name, (1, 2, 4, 1, 1), (4, 6), skip=skip)
        with pytest.warns(MissingDataWarning, match="2 of 8 files"):
            source = open_source(tmp_path / "d", pattern="E99_C<111,222>_ZS<000-003>.tif", missing="zeros")
        return source, expected


class TestRGBFilesOnTime(SourceContract):
    def make_source(self, tmp_path):
        folder = tmp_path / "d"
        folder.mkdir()
        rng = np.random.default_rng(3)
        frames = [rng.integers(0, 255, (6, 5, 3), dtype=np.uint8) for _ in range(3)]
        for t, frame in enumerate(frames):
            tifffile.imwrite(folder / f"rgb_t{t}.tif", frame, photometric="rgb")
        expected = np.stack([np.moveaxis(f, -1, 0)[:, None] for f in frames])
        return open_source(folder, pattern="rgb_t{t}.tif"), expected


# --------------------------------------------------------------------------- oracle, graph and laziness
def test_llsm_template_equals_da_block_and_one_task_per_file(tmp_path):
    expected = write_grid(tmp_path / "d", llsm_name, (2, 2, 2, 2, 2), (2, 6, 7), axes="ZYX")
    img = OMEArrow.scan(tmp_path / "d", pattern=LLSM_TEMPLATE)
    assert img.shape == (2, 2, 4, 12, 14)
    array = img.to_dask()
    assert len(array.dask.layers) == 1
    assert array.npartitions == 32 and len(dict(array.dask)) == 32 + 1  # one task per file + the source
    np.testing.assert_array_equal(array.compute(), expected)
    roi = img.slice_lazy(7, 14, 0, 6, t_indices=[1], c_indices=[0], z_indices=[2, 3])
    assert roi.read_plan.chunks_read == 1
    np.testing.assert_array_equal(roi.to_numpy(), expected[1:2, 0:1, 2:4, 0:6, 7:14])


def test_llsm_glob_inference_equals_template(tmp_path):
    write_grid(tmp_path / "d", llsm_name, (2, 2, 1, 2, 2), (2, 6, 7), axes="ZYX")
    inferred = OMEArrow.scan(str(tmp_path / "d" / "*.tif"))
    template = OMEArrow.scan(tmp_path / "d", pattern=LLSM_TEMPLATE)
    assert inferred.shape == template.shape == (2, 2, 2, 12, 14)
    np.testing.assert_array_equal(inferred.to_numpy(), template.to_numpy())
    text = inferred.explain()
    assert "ch# -> C (2: 0, 1" in text and "stack# -> T" in text and "#x -> X" in text
    assert "#msec -> ignored (timestamp)" in text
    assert "#nm -> ignored (same as field" in text
    assert "ch#->C" in inferred.source.describe()


def test_scan_reads_one_header_and_validate_reads_all(tmp_path, monkeypatch):
    write_grid(tmp_path / "d", plane_name, (1, 1, 12, 1, 1), (5, 7))
    calls = []
    original = S.read_header
    monkeypatch.setattr(S, "read_header", lambda path, **kw: calls.append(path) or original(path, **kw))
    OMEArrow.scan(tmp_path / "d", pattern="img_z{z}.tif")
    assert len(calls) == 1
    OMEArrow.scan(tmp_path / "d", pattern="img_z{z}.tif", validate=True)
    assert len(calls) == 1 + 1 + 12


def test_unpadded_numbers_in_numeric_order(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    for z in range(12):
        tifffile.imwrite(folder / f"img_z{z}.tif", np.full((2, 2), z, np.uint16))
    img = OMEArrow.scan(str(folder / "*.tif"))
    assert img.to_numpy()[0, 0, :, 0, 0].tolist() == list(range(12))
    lexicographic = [int(p.stem[5:]) for p in sorted(folder.glob("*.tif"))]
    assert lexicographic[:4] == [0, 1, 10, 11]  # what sorted(glob) would have stacked


def test_source_pickles_small_and_without_open_files(tmp_path):
    write_grid(tmp_path / "d", plane_name, (1, 1, 12, 1, 1), (5, 7))
    source = open_source(tmp_path / "d", pattern="img_z{z}.tif")
    blob = pickle.dumps(source)
    assert len(blob) < 20_000
    assert pickle.loads(blob).token == source.token


# --------------------------------------------------------------------------- missing files
def test_missing_files_error_lists_every_one(tmp_path):
    skip = {(0, 0, 1, 0, 0), (0, 1, 3, 0, 0), (0, 1, 5, 0, 0)}
    write_grid(tmp_path / "d", bracket_name, (1, 2, 6, 1, 1), (4, 4), skip=skip)
    with pytest.raises(InconsistentInputError, match="3 of 12 files") as info:
        OMEArrow.scan(tmp_path / "d" / "E99_C<111,222>_ZS<000-005>.tif")
    message = str(info.value)
    for where in ("c=0 (C111), z=1 (ZS001)", "c=1 (C222), z=3 (ZS003)", "c=1 (C222), z=5 (ZS005)"):
        assert where in message
    assert 'missing="zeros"' in message


def test_trailing_missing_file_is_caught_by_a_bracket_range(tmp_path):
    write_grid(tmp_path / "d", bracket_name, (1, 1, 3, 1, 1), (4, 4))
    with pytest.raises(InconsistentInputError, match="z=3"):
        OMEArrow.scan(tmp_path / "d" / "E99_C<111>_ZS<000-003>.tif")


def test_missing_zeros_explain_lists_them(tmp_path):
    write_grid(tmp_path / "d", plane_name, (1, 1, 4, 1, 1), (3, 3), skip={(0, 0, 2, 0, 0)})
    with pytest.warns(MissingDataWarning):
        img = OMEArrow.scan(tmp_path / "d", pattern="img_z{z}.tif", missing="zeros")
    assert "missing, filled with zeros: z=2 (z2)" in img.explain()
    assert "1 missing (zeros)" in img.source.describe()


def test_bad_missing_policy(tmp_path):
    write_grid(tmp_path / "d", plane_name, (1, 1, 2, 1, 1), (3, 3))
    with pytest.raises(OmeArrowDaskError, match="missing="):
        open_source(tmp_path / "d", pattern="img_z{z}.tif", missing="skip")


# --------------------------------------------------------------------------- inconsistent files
@pytest.mark.parametrize(
    ("odd", "what"),
    [
        (np.zeros((9, 7), np.uint16), r"\(9, 7\)"),
        (np.zeros((5, 7), np.uint8), "uint8"),
        (np.zeros((3, 5, 7), np.uint16), "3, 5, 7"),
    ],
)
def test_inconsistent_file_fails_in_its_task_and_with_validate(tmp_path, odd, what):
    write_grid(tmp_path / "d", plane_name, (1, 1, 6, 1, 1), (5, 7))
    tifffile.imwrite(
        tmp_path / "d" / "img_z3.tif", odd, metadata={"axes": "ZYX"[-odd.ndim :]}, photometric="minisblack"
    )
    img = OMEArrow.scan(tmp_path / "d", pattern="img_z{z}.tif")
    np.testing.assert_array_equal(img.slice_lazy(0, 7, 0, 5, z_indices=[0]).to_numpy().shape, (1, 1, 1, 5, 7))
    with pytest.raises(InconsistentInputError, match=f"img_z3.tif: shape .*{what}"):
        img.to_numpy(scheduler="sync")
    with pytest.raises(InconsistentInputError, match=f"1 files .* img_z3.tif: shape .*{what}"):
        OMEArrow.scan(tmp_path / "d", pattern="img_z{z}.tif", validate=True)


def test_corrupt_file_names_the_file(tmp_path):
    write_grid(tmp_path / "d", plane_name, (1, 1, 3, 1, 1), (5, 7))
    img = OMEArrow.scan(tmp_path / "d", pattern="img_z{z}.tif")
    (tmp_path / "d" / "img_z1.tif").write_bytes(b"not a tiff at all")
    os.utime(tmp_path / "d" / "img_z1.tif", ns=(0, img.source.mtimes[0, 0, 1, 0, 0]))
    size = os.path.getsize(tmp_path / "d" / "img_z1.tif")
    img.source.sizes[0, 0, 1, 0, 0] = size  # pretend it was already corrupt at scan time
    with pytest.raises(OmeArrowDaskError, match=r"img_z1.tif"):
        img.source.read_chunk((0, 0, 1, 0, 0))


# --------------------------------------------------------------------------- changed inputs
def test_changed_file_raises_input_changed(tmp_path):
    write_grid(tmp_path / "d", plane_name, (1, 1, 4, 1, 1), (5, 7))
    img = OMEArrow.scan(tmp_path / "d", pattern="img_z{z}.tif")
    tifffile.imwrite(tmp_path / "d" / "img_z2.tif", np.ones((5, 7), np.uint16), description="rewritten" * 10)
    with pytest.raises(InputChangedError, match=r"img_z2.tif changed"):
        img.to_numpy(scheduler="sync")


def test_deleted_file_raises_input_changed(tmp_path):
    write_grid(tmp_path / "d", plane_name, (1, 1, 4, 1, 1), (5, 7))
    img = OMEArrow.scan(tmp_path / "d", pattern="img_z{z}.tif")
    os.remove(tmp_path / "d" / "img_z1.tif")
    np.testing.assert_array_equal(img.slice_lazy(0, 7, 0, 5, z_indices=[3]).to_numpy().shape, (1, 1, 1, 5, 7))
    with pytest.raises(InputChangedError, match=r"img_z1.tif was deleted"):
        img.to_numpy(scheduler="sync")


# --------------------------------------------------------------------------- paths
def test_symlink_outside_the_folder_is_refused(tmp_path):
    write_grid(tmp_path / "d", plane_name, (1, 1, 2, 1, 1), (5, 7))
    tifffile.imwrite(tmp_path / "secret.tif", np.ones((5, 7), np.uint16))
    os.symlink(tmp_path / "secret.tif", tmp_path / "d" / "img_z2.tif")
    with pytest.raises(UnsafePathError, match="outside the folder"):
        OMEArrow.scan(tmp_path / "d", pattern="img_z{z}.tif")


def test_symlink_inside_the_folder_and_symlinked_root_work(tmp_path):
    expected = write_grid(tmp_path / "d", plane_name, (1, 1, 2, 1, 1), (5, 7))
    os.symlink("img_z1.tif", tmp_path / "d" / "img_z2.tif")
    os.symlink(tmp_path / "d", tmp_path / "link")
    img = OMEArrow.scan(tmp_path / "link", pattern="img_z{z}.tif")
    np.testing.assert_array_equal(img.to_numpy()[:, :, :2], expected)
    np.testing.assert_array_equal(img.to_numpy()[:, :, 2], expected[:, :, 1])


def test_symlink_loop_is_skipped(tmp_path):
    write_grid(tmp_path / "d", plane_name, (1, 1, 2, 1, 1), (5, 7))
    os.symlink("img_z9.tif", tmp_path / "d" / "img_z9.tif")
    img = OMEArrow.scan(tmp_path / "d", pattern="img_z<0-1>.tif")
    assert img.shape[2] == 2


def test_pattern_leaving_the_folder_is_refused(tmp_path):
    write_grid(tmp_path / "d", plane_name, (1, 1, 2, 1, 1), (5, 7))
    with pytest.raises(UnsafePathError):
        OMEArrow.scan(tmp_path / "d", pattern="../*.tif")


def test_pattern_in_the_folder_part_is_refused(tmp_path):
    with pytest.raises(OmeArrowDaskError, match="only the file-name part"):
        OMEArrow.scan(str(tmp_path / "d*" / "x.tif"))


def test_no_matching_files(tmp_path):
    write_grid(tmp_path / "d", plane_name, (1, 1, 2, 1, 1), (5, 7))
    with pytest.raises(OmeArrowDaskError, match="no files match"):
        OMEArrow.scan(tmp_path / "d", pattern="other_{z}.tif")


# --------------------------------------------------------------------------- registry
def test_probe_and_options(tmp_path):
    write_grid(tmp_path / "d", plane_name, (1, 1, 2, 1, 1), (5, 7))
    assert S.probe(str(tmp_path / "d" / "*.tif"))
    assert S.probe(str(tmp_path / "d"), pattern="img_z{z}.tif", level=0)
    assert S.probe(str(tmp_path / "d" / "img_z<0-1>.tif"))
    assert S.probe(str(tmp_path / "d" / "img_z{z}.tif"))
    assert not S.probe(str(tmp_path / "d" / "img_z0.tif"))
    assert not S.probe(str(tmp_path / "d"))
    with pytest.raises(TypeError, match="level"):
        S.open(str(tmp_path / "d"), pattern="img_z{z}.tif", level=0)


# --------------------------------------------------------------------------- real samples
def test_nviz_sample_with_ome_arrow_bracket_pattern(samples_dir):
    folder = samples_dir / "nviz-artificial-4d-dataset"
    img = OMEArrow.scan(str(folder / "E99_C<111,222>_ZS<000-021>.tif"))
    assert img.shape == (1, 2, 22, 128, 128)
    assert img.meta.channel_names == ("C111", "C222")
    expected = np.stack(
        [np.stack([tifffile.imread(folder / f"E99_C{c}_ZS{z:03d}.tif") for z in range(22)]) for c in (111, 222)]
    )
    np.testing.assert_array_equal(img.to_numpy()[0], expected)
    inferred = OMEArrow.scan(str(folder / "*.tif"))
    assert inferred.shape == img.shape and inferred.source.token != img.source.token
    regex_mode = OMEArrow.scan(str(folder / r"E99_C111_ZS.*\.tif"))  # ome-arrow's regex mode: Z=22
    np.testing.assert_array_equal(regex_mode.to_numpy()[0, 0], expected[0])


def test_examplehuman_sample_has_three_channels(samples_dir):
    folder = samples_dir / "examplehuman"
    img = OMEArrow.scan(str(folder / "AS_09125_050116030001_D03f00d<0-2>.tif"))
    assert img.shape[:3] == (1, 3, 1)
    expected = np.stack([tifffile.imread(folder / f"AS_09125_050116030001_D03f00d{c}.tif") for c in range(3)])
    np.testing.assert_array_equal(img.to_numpy()[0, :, 0], expected)


# --------------------------------------------------------------------------- page-level reads
def _spy_page_reads(monkeypatch):
    """Record (file name, pages) of every tifffile decode; pages None means the whole series."""
    calls = []
    original_asarray = tifffile.TiffFile.asarray
    original_series = tifffile.TiffPageSeries.asarray

    def file_asarray(self, key=None, **kwargs):
        if key is not None:  # a whole-series decode goes through TiffPageSeries.asarray, recorded there
            calls.append((os.path.basename(self.filename), tuple(key)))
        return original_asarray(self, key=key, **kwargs)

    def series_asarray(self, *args, **kwargs):
        calls.append((os.path.basename(self.parent.filehandle.path), None))
        return original_series(self, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffFile, "asarray", file_asarray)
    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", series_asarray)
    return calls


@pytest.fixture
def zstack_files(tmp_path):
    """2 T x 2 C files of ZYX (5, 16, 12) uint16; each voxel encodes its (t, c, z, y, x)."""
    t, c, z, y, x = np.indices((2, 2, 5, 16, 12))
    full = (t * 10000 + c * 1000 + z * 100 + y * 10 + x % 10).astype(np.uint16)
    folder = tmp_path / "zs"
    folder.mkdir()
    for ti, ci in itertools.product(range(2), range(2)):
        tifffile.imwrite(folder / f"img_t{ti}_c{ci}.tif", full[ti, ci], metadata={"axes": "ZYX"})
    return folder, full


@pytest.mark.parametrize(
    ("z_indices", "roi", "pages"),
    [
        ([3], (2, 9, 1, 7), {(3,)}),
        ([4, 1], None, {(4, 1), (1, 4)}),
        (None, (0, 12, 0, 16), None),  # all pages: the whole series in one decode
    ],
)
def test_a_selection_decodes_only_the_pages_it_touches(zstack_files, monkeypatch, z_indices, roi, pages):
    folder, full = zstack_files
    img = OMEArrow.scan(folder, pattern="img_t{t}_c{c}.tif")
    assert img.source.layout.n_pages == 5
    calls = _spy_page_reads(monkeypatch)
    sel = img.slice_lazy(*(roi or (0, 12, 0, 16)), t_indices=[1], z_indices=z_indices)
    got = sel.to_numpy()
    z = sorted(set(z_indices)) if z_indices else list(range(5))
    x0, x1, y0, y1 = roi or (0, 12, 0, 16)
    np.testing.assert_array_equal(got, full[1:2][:, :, z][..., y0:y1, x0:x1])
    n_read = len(z_indices) if z_indices else 5
    assert f"decodes {n_read} of 5 pages" in sel.explain()
    assert sorted(name for name, _ in calls) == ["img_t1_c0.tif", "img_t1_c1.tif"]  # one decode per file
    if pages is None:
        assert all(key is None for _, key in calls)
    else:
        assert all(key in pages for _, key in calls)


def test_unsorted_repeated_page_selection_matches_numpy(zstack_files):
    folder, full = zstack_files
    img = OMEArrow.scan(folder, pattern="img_t{t}_c{c}.tif")
    view = img.tensor_view(t=1, c=0, z=[4, 0, 2], layout="ZYX")
    np.testing.assert_array_equal(view.to_numpy(), full[1, 0, [4, 0, 2]])
    strided = img.to_dask()[:, :, 1::2, 3:9]
    np.testing.assert_array_equal(strided.compute(), full[:, :, 1::2, 3:9])


def test_pages_across_two_file_axes(tmp_path, monkeypatch):
    """ImageJ hyperstack files TZYX: a (t, z) selection maps to page t * Z + z."""
    rng = np.random.default_rng(3)
    data = [rng.integers(0, 4000, size=(3, 4, 8, 8), dtype=np.uint16) for _ in range(2)]
    for c, d in enumerate(data):
        tifffile.imwrite(tmp_path / f"w{c}.tif", d, imagej=True, metadata={"axes": "TZYX"})
    img = OMEArrow.scan(tmp_path, pattern="w{c}.tif")
    assert img.shape == (3, 2, 4, 8, 8)
    calls = _spy_page_reads(monkeypatch)
    got = img.slice_lazy(0, 8, 0, 8, t_indices=[2], z_indices=[1, 3]).to_numpy()
    np.testing.assert_array_equal(got[0, 1], data[1][2, [1, 3]])
    assert {key for _, key in calls} == {(2 * 4 + 1, 2 * 4 + 3)}


def test_rgb_files_are_read_whole_and_keep_their_samples(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, size=(2, 6, 7, 3), dtype=np.uint8)
    for z in range(2):
        tifffile.imwrite(tmp_path / f"rgb_z{z}.tif", rgb[z], photometric="rgb")
    img = OMEArrow.scan(tmp_path, pattern="rgb_z{z}.tif")
    assert img.source.layout.n_pages == 1
    got = img.slice_lazy(1, 5, 0, 6, c_indices=[2], z_indices=[1]).to_numpy()
    np.testing.assert_array_equal(got[0, 0, 0], rgb[1, 0:6, 1:5, 2])


def test_a_shorter_file_fails_before_its_pages_are_read(zstack_files):
    folder, full = zstack_files
    tifffile.imwrite(folder / "img_t1_c1.tif", full[1, 1, :3], metadata={"axes": "ZYX"}, photometric="minisblack")
    img = OMEArrow.scan(folder, pattern="img_t{t}_c{c}.tif")
    with pytest.raises(InconsistentInputError, match=r"img_t1_c1\.tif: shape \(3, 16, 12\)"):
        img.tensor_view(t=1, c=1, z=0).to_numpy()


# --------------------------------------------------------------------------- physical sizes
def test_physical_sizes_come_from_the_first_files_imagej_metadata(tmp_path):
    for z in range(3):
        tifffile.imwrite(
            tmp_path / f"p_z{z}.tif",
            np.zeros((2, 5, 6), np.uint16),
            imagej=True,
            resolution=(1 / 0.25, 1 / 0.5),
            metadata={"axes": "ZYX", "spacing": 2.5, "unit": "um"},
        )
    meta = OMEArrow.scan(tmp_path, pattern="p_z{z}.tif").meta
    ps = meta.physical_size
    assert (ps.x, ps.y, ps.z) == pytest.approx((0.25, 0.5, 2.5))
    assert ps.x_unit == "µm"
    assert meta.name == tmp_path.name


def test_physical_sizes_come_from_the_first_files_ome_xml(tmp_path):
    for c in range(2):
        tifffile.imwrite(
            tmp_path / f"o_c{c}.ome.tif",
            np.zeros((4, 5), np.uint16),
            metadata={"axes": "YX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.7},
        )
    ps = OMEArrow.scan(tmp_path, pattern="o_c{c}.ome.tif").meta.physical_size
    assert (ps.x, ps.y) == pytest.approx((0.65, 0.7))


def test_plain_tiff_has_no_physical_size(tmp_path):
    for z in range(2):
        tifffile.imwrite(tmp_path / f"q_z{z}.tif", np.zeros((4, 5), np.uint8), resolution=(72, 72))
    ps = OMEArrow.scan(tmp_path, pattern="q_z{z}.tif").meta.physical_size
    assert (ps.x, ps.y, ps.z) == (None, None, None)
