"""Objects the docstring examples of the package use (pytest runs them with --doctest-modules).

Each name is what a user would have at that point of the pipeline: ``image`` a simulated skin
section (channels DAPI, KRT14, CD8, CD163 at 0.5 µm per pixel), ``truth`` its true cell labels,
``labels`` the classical segmentation of it, ``cells`` its measured cells table, ``image_path`` the
same image as an OME-TIFF file.
"""

import functools

import pytest

NAMES = ["DAPI", "KRT14", "CD8", "CD163"]


@functools.cache
def _example(tmp: str):
    from dvp_pipeline.features import measure_cells
    from dvp_pipeline.segmentation import segment
    from dvp_pipeline.simulate import simulate_tissue, write_ome_tiff

    tissue = simulate_tissue("TEN", seed=1, size=320)
    labels = segment(tissue.image, pixel_size_um=0.5)
    cells = measure_cells(labels, tissue.image, channel_names=NAMES, pixel_size_um=0.5, sample="TEN01")
    path = f"{tmp}/TEN01.ome.tif"
    write_ome_tiff(tissue.image, path, channels=NAMES, pixel_size_um=0.5)
    return {
        "image": tissue.image,
        "truth": tissue.labels,
        "labels": labels,
        "cells": cells,
        "image_path": path,
    }


@pytest.fixture(autouse=True)
def _doctest_objects(doctest_namespace, tmp_path_factory):
    doctest_namespace.update(_example(str(tmp_path_factory.getbasetemp())))
