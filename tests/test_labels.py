"""NGFF label images: written beside an OME-Zarr image, read back through ``img.labels``."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import InconsistentInputError, InputChangedError, OmeArrowDaskError, UnsupportedSourceError


def _image_and_mask(dtype="u4"):
    image = OMEArrow(np.random.default_rng(0).integers(0, 1000, (3, 2, 9, 11), dtype="u2"), dim_order="CZYX")
    mask = np.zeros((2, 9, 11), dtype)
    mask[0, 2:5, 3:7] = 5
    mask[1, 5:, 7:] = 70 if np.dtype(dtype).itemsize < 4 else 70000
    mask[1, 0, 0] = 3  # a one-pixel label: nearest-neighbour keeps it at level 1 (pixel 0, 0)
    return image, mask


def _attrs(path, version):
    with open(os.path.join(path, "zarr.json" if version == "0.5" else ".zattrs")) as fh:
        doc = json.load(fh)
    return doc["attributes"]["ome"] if version == "0.5" else doc


@pytest.mark.parametrize(("version", "dtype"), [("0.5", "u4"), ("0.4", "i2")])
def test_labels_round_trip_with_nearest_pyramid_and_metadata(tmp_path, version, dtype):
    image, mask = _image_and_mask(dtype)
    out = str(tmp_path / "a.ome.zarr")
    image.export("ome-zarr", out=out, levels=2, version=version, labels={"nuclei": OMEArrow(mask, image_type="label")})
    img = OMEArrow.scan(out)
    assert list(img.labels) == ["nuclei"]
    nuclei = img.labels["nuclei"]
    assert nuclei.meta.image_type == "label" and nuclei.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(nuclei.to_numpy()[0, 0], mask)
    low = OMEArrow.scan(out, level=1).labels["nuclei"]  # the image's level
    np.testing.assert_array_equal(low.to_numpy()[0, 0], mask[:, ::2, ::2])  # values never averaged
    block = _attrs(os.path.join(out, "labels", "nuclei"), version)["image-label"]
    assert block["source"] == {"image": "../../"}
    assert [c["label-value"] for c in block["colors"]] == sorted({0, 3, 5, int(mask.max())})
    assert _attrs(os.path.join(out, "labels"), version)["labels"] == ["nuclei"]
    ms = _attrs(os.path.join(out, "labels", "nuclei"), version)["multiscales"][0]
    assert len(ms["datasets"]) == 2 and ms["type"] == "nearest"


def test_labels_validate_and_ome_zarr_py_reads_them(tmp_path):
    ome_zarr_models = pytest.importorskip("ome_zarr_models")
    pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    for version in ("0.5", "0.4"):
        image, mask = _image_and_mask()
        out = str(tmp_path / f"a{version}.ome.zarr")
        labels = {"cells": {"image": mask, "colors": {5: (255, 0, 0, 255), 3: (0, 255, 0, 255)},
                            "properties": {5: {"class": "big"}, 3: {"class": "small"}}}}
        image.export("ome-zarr", out=out, levels=2, version=version, labels=labels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert type(ome_zarr_models.open_ome_zarr(os.path.join(out, "labels"))).__name__ == "Labels"
            label = ome_zarr_models.open_ome_zarr(os.path.join(out, "labels", "cells"))
            assert type(label).__name__ == "ImageLabel"
        block = _attrs(os.path.join(out, "labels", "cells"), version)["image-label"]
        assert block["properties"] == [{"class": "small", "label-value": 3}, {"class": "big", "label-value": 5}]
        assert block["colors"][1] == {"label-value": 5, "rgba": [255, 0, 0, 255]}
        nodes = list(Reader(parse_url(out))())
        assert any("Label" in [type(s).__name__ for s in n.specs] for n in nodes)


def test_bad_labels_are_refused_before_writing(tmp_path):
    image, mask = _image_and_mask()
    with pytest.raises(OmeArrowDaskError, match="integers"):
        image.export("ome-zarr", out=str(tmp_path / "f.zarr"), labels={"x": mask.astype("f4")})
    with pytest.raises(InconsistentInputError, match=r"needs \(1, 1, 2, 9, 11\)"):
        image.export("ome-zarr", out=str(tmp_path / "s.zarr"), labels={"x": mask[:, :8]})
    with pytest.raises(OmeArrowDaskError, match="label name"):
        image.export("ome-zarr", out=str(tmp_path / "n.zarr"), labels={"../x": mask})
    assert os.listdir(tmp_path) == []  # refused before the image was written


def test_labels_of_images_without_them(tmp_path):
    image, _ = _image_and_mask()
    out = str(tmp_path / "a.ome.zarr")
    image.export("ome-zarr", out=out)
    assert dict(OMEArrow.scan(out).labels) == {}
    with pytest.raises(UnsupportedSourceError):
        _ = image.labels  # in memory: no store


def test_labels_resume_and_changed_labels(tmp_path):
    image, mask = _image_and_mask()
    out = str(tmp_path / "a.ome.zarr")
    image.export("ome-zarr", out=out, labels={"nuclei": mask})
    image.export("ome-zarr", out=out, labels={"nuclei": mask}, resume=True)  # finished: nothing to do
    with pytest.raises(InputChangedError):
        image.export("ome-zarr", out=out, labels={"nuclei": mask + 1}, resume=True)
    image.export("ome-zarr", out=out, labels={"cells": mask}, resume=True)  # a new label beside the old one
    assert sorted(OMEArrow.scan(out).labels) == ["cells", "nuclei"]
