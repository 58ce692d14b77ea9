"""The real Cellpose code path, with a tiny model trained here from scratch.

Pretrained weights cannot be downloaded in CI, so the test trains a small Cellpose 3 model on
synthetic nuclei through Cellpose's own training API (about a minute on 2 CPU cores) and segments a
new image with it through ``segment(method="cellpose", model=<path>)``. Cellpose is a test
dependency (``pip install -e '.[test,cellpose]'``): when it is missing these tests fail, not skip.
"""

import numpy as np
import pytest
import torch
from cellpose import models, train
from skimage.draw import disk

from dvp_pipeline.errors import DVPError
from dvp_pipeline.segmentation import match_labels, segment
from dvp_pipeline.tiling import segment_tiled

pytestmark = pytest.mark.cellpose


def _nuclei(rng, size=128, count=25, radius=6):
    image = np.zeros((size, size), np.float32)
    labels = np.zeros((size, size), np.int32)
    placed = 0
    for _ in range(500):
        if placed == count:
            break
        y, x = rng.integers(radius + 2, size - radius - 2, 2)
        if labels[max(0, y - radius - 3) : y + radius + 4, max(0, x - radius - 3) : x + radius + 4].any():
            continue
        placed += 1
        rr, cc = disk((y, x), radius, shape=image.shape)
        labels[rr, cc] = placed
        image[rr, cc] = 1.0
    image += 0.05 * rng.standard_normal(image.shape).astype(np.float32)
    return image, labels


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    data = [_nuclei(rng) for _ in range(8)]
    net = models.CellposeModel(gpu=False, pretrained_model=False, diam_mean=12.0)
    path, _, _ = train.train_seg(
        net.net,
        train_data=[d[0] for d in data],
        train_labels=[d[1] for d in data],
        channels=[0, 0],
        n_epochs=40,
        learning_rate=0.1,
        SGD=True,
        batch_size=8,
        save_path=str(tmp_path_factory.mktemp("cellpose")),
        model_name="tiny",
        rescale=False,
        bsize=128,
        min_train_masks=1,
    )
    return str(path)


def test_trained_model_segments_through_our_api(tiny_model):
    image, truth = _nuclei(np.random.default_rng(42), size=256, count=60)
    # Raw-looking intensities: 16-bit range with an offset, as from a microscope.
    image = (image * 2000 + 300).clip(0, None)
    labels = segment(image, method="cellpose", model=tiny_model, pixel_size_um=0.5)
    assert labels.dtype == np.uint32
    assert match_labels(labels, truth, iou_threshold=0.5)["f1"] >= 0.9


def test_cellpose_tiled(tiny_model):
    image, truth = _nuclei(np.random.default_rng(3), size=320, count=80)
    image = image * 1000 + 100
    tiled, _ = segment_tiled(image, method="cellpose", model=tiny_model, tile_size=160, overlap=32, pixel_size_um=0.5)
    assert match_labels(tiled, truth, iou_threshold=0.5)["f1"] >= 0.9


def test_missing_model_file_is_an_error(tmp_path):
    with pytest.raises(DVPError, match="model file .* not found"):
        segment(np.ones((32, 32)), method="cellpose", model=str(tmp_path / "nope" / "model"))
