"""Label images without ``labels.py`` importing core: arrays become plans through the caller's plan type."""

from __future__ import annotations

import numpy as np
import pytest

from ome_arrow_dask import OMEArrow, writers
from ome_arrow_dask.errors import OmeArrowDaskError
from ome_arrow_dask.labels import PreparedLabel, prepare_labels


class MyPlan(OMEArrow):
    """A user subclass: plans it opens (labels included) keep its type."""


def _image_and_mask():
    image = OMEArrow(np.arange(2 * 8 * 8, dtype="u2").reshape(2, 8, 8), dim_order="ZYX")
    mask = np.zeros((2, 8, 8), "u2")
    mask[:, 2:5, 3:6] = 4
    return image, mask


def test_writers_write_opens_label_arrays_with_the_images_plan_type(tmp_path):
    image, mask = _image_and_mask()
    out = str(tmp_path / "a.ome.zarr")
    writers.write("ome-zarr", MyPlan(image), out, labels={"cells": mask})
    labels = MyPlan.scan(out).labels
    assert type(labels["cells"]) is MyPlan  # opened through the image's own type
    assert labels["cells"].meta.image_type == "label"
    np.testing.assert_array_equal(labels["cells"].to_numpy()[0, 0], mask)


def test_a_write_input_with_label_arrays_is_refused_with_what_to_do(tmp_path):
    image, mask = _image_and_mask()
    item = writers.as_write_input(image)
    with pytest.raises(OmeArrowDaskError, match=r"label image 'cells' is a ndarray; pass an image plan: OMEArrow\("):
        writers.write("ome-zarr", item, str(tmp_path / "a.ome.zarr"), labels={"cells": mask})
    # label plans need no plan type
    writers.write("ome-zarr", item, str(tmp_path / "b.ome.zarr"), labels={"cells": OMEArrow(mask, dim_order="ZYX")})
    assert list(OMEArrow.scan(str(tmp_path / "b.ome.zarr")).labels) == ["cells"]


def test_prepare_labels_relabels_plans_through_their_type_and_passes_prepared_labels_through():
    image, mask = _image_and_mask()
    prepared = prepare_labels(image, {"cells": {"image": MyPlan(mask, dim_order="ZYX"), "colors": {4: (1, 2, 3, 255)}}})
    label = prepared["cells"]
    assert isinstance(label, PreparedLabel) and type(label.image) is MyPlan
    assert label.image.meta.image_type == "label" and label.colors == {4: (1, 2, 3, 255)}
    assert prepare_labels(image, prepared) == prepared
