"""The annotation page (``dvp annotate``): its content, escaping and order, and labelling in a real browser."""

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dvp_pipeline import io, simulate
from dvp_pipeline.annotate import annotation_order, annotation_page, annotation_page_path, build_annotation_page
from dvp_pipeline.classify import classify_sample, train_classifier
from dvp_pipeline.cli import main
from dvp_pipeline.cli.train_classifier import read_annotations
from dvp_pipeline.errors import DVPError
from dvp_pipeline.images import open_image
from dvp_pipeline.layout import Results
from dvp_pipeline.options import ClassifyOptions, SegmentOptions
from dvp_pipeline.slide import plan_slide, segment_slide

CHANNELS = list(simulate.CHANNELS)
TYPES = ["keratinocyte", "cd8_t_cell", "macrophage"]
HOSTILE_TYPE = "<img src=x onerror=alert(1)>"
HOSTILE_SAMPLE = "TEN\"01'<b>&amp;"
HOSTILE_CHANNEL = "</script><script>alert(2)</script>"


def page_data(page: str) -> dict:
    """The JSON the page's script reads."""
    block = re.search(r'<script type="application/json" id="annotate-data">(.*?)</script>', page, re.S)
    assert block is not None
    return json.loads(block.group(1))


def synthetic_crops(n=6, size=24, confidences=None, types=("keratinocyte", "cd8_t_cell")):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    crops = []
    for i in range(n):
        cell_id = i + 1
        labels = np.where((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2, cell_id, 0).astype(np.uint32)
        crops.append(
            {
                "cell_id": cell_id,
                "cell_type": types[i % len(types)],
                "confidence": np.nan if confidences is None else confidences[i],
                "pixels": rng.integers(0, 4000, size=(4, size, size)).astype(np.uint16),
                "labels": labels,
            }
        )
    return crops


# --- the page's content ---------------------------------------------------------------------------


def test_hostile_names_are_escaped_everywhere():
    crops = synthetic_crops(types=(HOSTILE_TYPE, "keratinocyte"))
    page = annotation_page(
        HOSTILE_SAMPLE,
        crops,
        channels=["DAPI", HOSTILE_CHANNEL, "CD8", "CD163"],
        cell_types=[HOSTILE_TYPE, "keratinocyte"],
    )
    benign = annotation_page("TEN01", synthetic_crops(), channels=CHANNELS, cell_types=TYPES)
    # nothing a name carries becomes markup: no extra tags, no closed script block
    assert "<img src=x" not in page and "<b>" not in page
    assert HOSTILE_CHANNEL not in page and "alert(2)</script>" not in page
    assert page.count("<script") == benign.count("<script") and page.count("</script>") == benign.count("</script>")
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # the button's text, escaped
    assert "TEN&#34;01&#39;&lt;b&gt;&amp;amp;" in page  # the title and header, escaped
    # the script gets every name back exactly from the JSON block
    data = page_data(page)
    assert data["sample"] == HOSTILE_SAMPLE
    assert [t["name"] for t in data["types"]] == [HOSTILE_TYPE, "keratinocyte", "unassigned"]
    assert [t["key"] for t in data["types"]] == ["1", "2", "0"]
    assert data["channels"][1]["name"] == HOSTILE_CHANNEL
    assert {c["predicted"] for c in data["cells"]} == {HOSTILE_TYPE, "keratinocyte"}
    # the download's file name is made safe, not just escaped
    assert re.fullmatch(r"[A-Za-z0-9_-]+_labels\.tsv", data["download"])
    # the script builds the page from text nodes and attributes only
    script = page.split('id="annotate-data">', 1)[1].split("</script>", 1)[1]
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "document.write" not in script


def test_page_is_self_contained():
    page = annotation_page("TEN01", synthetic_crops(), channels=CHANNELS, cell_types=TYPES)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "@import" not in page and "url(http" not in page
    data = page_data(page)
    cell = data["cells"][0]
    assert cell["composite"].startswith("iVBORw0KGgo")  # base64 PNG
    assert len(cell["channels"]) == 4 and all(c.startswith("iVBORw0KGgo") for c in cell["channels"])
    # the outline surrounds the crop's middle
    xs, ys = np.array(cell["outline"][0][0::2]), np.array(cell["outline"][0][1::2])
    assert abs(xs.mean() - 12) < 1.5 and abs(ys.mean() - 12) < 1.5
    # the composite's colours are the reports' (nuclear channel blue)
    assert data["channels"][0]["color"] == "#0059ff"
    assert data["perPage"] > 0 and len(data["build"]) == 16


def test_build_id_follows_the_cells():
    first = page_data(annotation_page("TEN01", synthetic_crops(), channels=CHANNELS, cell_types=TYPES))["build"]
    again = page_data(annotation_page("TEN01", synthetic_crops(), channels=CHANNELS, cell_types=TYPES))["build"]
    other = page_data(annotation_page("TEN01", synthetic_crops(n=5), channels=CHANNELS, cell_types=TYPES))["build"]
    assert first == again != other


def test_page_rejects_what_it_cannot_show():
    with pytest.raises(DVPError, match="no cells"):
        annotation_page("TEN01", [], channels=CHANNELS, cell_types=TYPES)
    with pytest.raises(DVPError, match="3 names given for crops of 4 channels"):
        annotation_page("TEN01", synthetic_crops(), channels=CHANNELS[:3], cell_types=TYPES)


# --- which cells, in which order ------------------------------------------------------------------


def test_least_confident_first_and_cells_without_confidence_before_them():
    cells = pd.DataFrame({"cell_id": range(1, 9), "confidence": [0.9, 0.6, np.nan, 0.99, 0.6, 0.51, 0.8, 0.7]})
    order = annotation_order(cells, n_cells=8)["cell_id"].tolist()
    assert order[0] == 3
    assert order[1] == 6 and set(order[2:4]) == {2, 5} and order[4:] == [8, 7, 1, 4]
    # ties are broken by the seed, the same on every run
    assert (
        annotation_order(cells, n_cells=8, seed=1)["cell_id"].tolist()
        == annotation_order(cells, n_cells=8, seed=1)["cell_id"].tolist()
    )


def test_random_order_without_confidence_is_seeded_and_capped():
    cells = pd.DataFrame({"cell_id": range(1, 201)})
    first = annotation_order(cells, n_cells=50, seed=3)["cell_id"].tolist()
    assert len(first) == 50 and len(set(first)) == 50
    assert first == annotation_order(cells, n_cells=50, seed=3)["cell_id"].tolist()
    assert first != annotation_order(cells, n_cells=50, seed=4)["cell_id"].tolist()
    assert first != sorted(first)
    assert len(annotation_order(cells.head(10), n_cells=50)) == 10
    with pytest.raises(DVPError, match="at least 1"):
        annotation_order(cells, n_cells=0)


# --- from a results folder ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A simulated TEN sample segmented and classified into a results folder, with its samples sheet."""
    root = tmp_path_factory.mktemp("annotate")
    tissue = simulate.simulate_tissue("TEN", seed=4, size=256)
    simulate.write_ome_tiff(tissue.image, root / "TEN01.ome.tif", channels=CHANNELS, pixel_size_um=0.5)
    results = Results(str(root / "results"))
    with open_image(root / "TEN01.ome.tif") as image:
        plan = plan_slide(image, SegmentOptions.from_mapping({}), nuclear_channel="DAPI", pixel_size_um=0.5)
        segment_slide(
            image,
            plan,
            sample="TEN01",
            pixel_size_um=0.5,
            neighbourhood_radius_um=30,
            labels=results.labels("TEN01"),
            cells=results.cells("TEN01"),
        )
    cells = io.read_table(results.cells("TEN01"))
    classified, _ = classify_sample(cells, ClassifyOptions.from_mapping({}))
    io.write_table(classified, results.cells_classified("TEN01"))
    (root / "config").mkdir()
    samples = root / "config" / "samples.tsv"
    samples.write_text("sample\tcondition\timage\nTEN01\tTEN\tTEN01.ome.tif\n")
    return {"root": root, "results": results, "samples": samples, "cells": cells, "classified": classified}


def test_build_caps_and_orders_the_cells(project):
    page = build_annotation_page(project["results"], "TEN01", samples_path=project["samples"], n_cells=25)
    data = page_data(page)
    assert len(data["cells"]) == 25
    confidences = [c["confidence"] for c in data["cells"]]
    assert confidences == sorted(confidences)
    least = project["classified"].nsmallest(25, "confidence")["confidence"].max()
    assert max(confidences) == pytest.approx(least, abs=1e-4)
    classified = project["classified"].set_index("cell_id")
    for cell in data["cells"]:
        assert cell["predicted"] == classified.loc[cell["id"], "cell_type"]
        assert (cell["w"], cell["h"]) == (64, 64)
    # the types to label: the schema's default rules, as no config was given
    assert [t["name"] for t in data["types"]] == TYPES + ["unassigned"]
    assert "25 of the sample" in page


def test_build_before_classify_takes_a_random_order(project, tmp_path):
    results = Results(str(tmp_path / "results"))
    Path(results.sample_dir("TEN01")).mkdir(parents=True)
    shutil.copy(project["results"].cells("TEN01"), results.cells("TEN01"))
    shutil.copy(project["results"].labels("TEN01"), results.labels("TEN01"))
    page = build_annotation_page(
        results, "TEN01", samples_path=project["samples"], n_cells=10, seed=2, cell_types=["tumour", "stroma"]
    )
    data = page_data(page)
    ids = [c["id"] for c in data["cells"]]
    assert ids == annotation_order(project["cells"], n_cells=10, seed=2)["cell_id"].tolist()
    assert all(c["predicted"] is None and c["confidence"] is None for c in data["cells"])
    assert [t["name"] for t in data["types"]] == ["tumour", "stroma", "unassigned"]
    assert "not classified yet" in page


def test_build_names_what_is_missing(project, tmp_path):
    with pytest.raises(DVPError, match="no row for sample 'NOPE'"):
        build_annotation_page(project["results"], "NOPE", samples_path=project["samples"])
    with pytest.raises(DVPError, match="dvp segment"):
        build_annotation_page(tmp_path / "results", "TEN01", samples_path=project["samples"])


def test_cli_writes_the_page_into_the_results(project, monkeypatch):
    monkeypatch.chdir(project["root"])
    assert main(["annotate", "TEN01", "--cells", "12", "--per-page", "6"]) == 0
    path = Path(annotation_page_path("results", "TEN01"))
    assert path == Path("results/TEN01/annotate.html")
    data = page_data(path.read_text(encoding="utf-8"))
    assert len(data["cells"]) == 12 and data["perPage"] == 6
    assert not list(path.parent.glob(".annotate.tmp*"))  # written atomically


def test_cli_help_explains_the_workflow(capsys):
    with pytest.raises(SystemExit):
        main(["annotate", "--help"])
    text = capsys.readouterr().out
    assert "Download labels" in text and "dvp train-classifier" in text and "--annotations" in text


# --- in a real browser ----------------------------------------------------------------------------


def _chrome(download_dir: Path, profile: Path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(download_dir), "download.prompt_for_download": False}
    )
    try:
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
    except WebDriverException as err:
        pytest.skip(f"chromium did not start: {err.msg}")
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


def _wait(condition, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


@pytest.mark.browser
def test_label_reload_download_and_train_in_a_browser(project, tmp_path):
    pytest.importorskip("selenium", reason="selenium is not installed")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    page_path = tmp_path / "annotate.html"
    page_path.write_text(
        build_annotation_page(
            project["results"], "TEN01", samples_path=project["samples"], n_cells=60, cells_per_page=24
        ),
        encoding="utf-8",
    )
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = _chrome(downloads, tmp_path / "profile")
    try:
        driver.get(page_path.as_uri())
        tiles = lambda: driver.find_elements(By.CSS_SELECTOR, "#cells .cell")  # noqa: E731
        text = lambda element_id: driver.find_element(By.ID, element_id).text  # noqa: E731
        keys = lambda *k: ActionChains(driver).send_keys(*k).perform()  # noqa: E731
        assert len(tiles()) == 24
        assert text("page-info") == "page 1 of 3 (60 cells)"
        cells = driver.execute_script(
            "return JSON.parse(document.getElementById('annotate-data').textContent).cells"
            ".map(function (c) { return [c.id, c.predicted]; });"
        )
        expected = {}

        # by clicking: the called keratinocytes, a cell then the type's button
        Select(driver.find_element(By.ID, "filter-predicted")).select_by_value("keratinocyte")
        shown = [int(t.get_attribute("data-cell-id")) for t in tiles()]
        assert shown == [i for i, p in cells if p == "keratinocyte"][: len(shown)] and len(shown) >= 3
        button = driver.find_element(By.CSS_SELECTOR, '.type-button[data-type-index="0"]')
        for position in range(3):
            tiles()[position].click()
            button.click()
            expected[shown[position]] = "keratinocyte"
        assert "keratinocyte" in tiles()[0].find_element(By.CSS_SELECTOR, ".label").text

        # by keys: the called CD8 T cells; 2 = cd8_t_cell, the next cell follows each label
        Select(driver.find_element(By.ID, "filter-predicted")).select_by_value("cd8_t_cell")
        shown = [int(t.get_attribute("data-cell-id")) for t in tiles()]
        assert len(shown) >= 5
        tiles()[0].click()
        keys("2", "2", "2")
        expected.update(dict.fromkeys(shown[:3], "cd8_t_cell"))
        keys("0")  # unassigned ...
        assert "unassigned" in tiles()[3].find_element(By.CSS_SELECTOR, ".label").text
        keys(Keys.ARROW_LEFT, Keys.BACKSPACE)  # ... then taken back
        assert "unassigned" not in tiles()[3].find_element(By.CSS_SELECTOR, ".label").text
        assert "current" in tiles()[3].get_attribute("class")
        assert text("progress") == "6 of 60 cells labelled"

        # views, outline and pages from the keyboard
        keys("v")
        assert "single-channel" in driver.find_element(By.ID, "cells").get_attribute("class")
        keys("c")
        Select(driver.find_element(By.ID, "filter-predicted")).select_by_value("")
        tiles()[0].click()
        keys("n")
        assert text("page-info").startswith("page 2 of 3")
        keys("p")
        assert text("page-info").startswith("page 1 of 3")

        # confidence filter
        driver.find_element(By.ID, "filter-min").send_keys("0.7")
        driver.find_element(By.ID, "filter-max").send_keys("0.8")
        driver.find_element(By.ID, "filter-predicted").click()  # leave the input: its change event
        confidences = driver.execute_script(
            "var d = JSON.parse(document.getElementById('annotate-data').textContent);"
            "var c = {}; d.cells.forEach(function (x) { c[x.id] = x.confidence; });"
            "return Array.prototype.map.call(document.querySelectorAll('#cells .cell'),"
            " function (t) { return c[t.getAttribute('data-cell-id')]; });"
        )
        assert confidences and all(0.7 <= c <= 0.8 for c in confidences)

        # a reload keeps the labels (localStorage)
        driver.refresh()
        _wait(lambda: text("progress") == "6 of 60 cells labelled")
        stored = driver.execute_script(
            "var k = Object.keys(localStorage).filter(function (k) { return k.indexOf('dvp-annotate:') === 0; });"
            "return k.length === 1 ? JSON.parse(localStorage.getItem(k[0])).labels : null;"
        )
        assert stored == {str(k): v for k, v in expected.items()}
        labelled = {
            int(t.get_attribute("data-cell-id")): t.find_element(By.CSS_SELECTOR, ".label").text for t in tiles()
        }
        assert all(labelled[i].endswith(t) for i, t in expected.items() if i in labelled)

        assert driver.save_screenshot(str(tmp_path / "annotate.png"))

        # Download labels: the TSV train-classifier reads
        driver.find_element(By.ID, "download").click()
        tsv = _wait(lambda: next((p for p in downloads.glob("*.tsv")), None))
        assert tsv.name == "TEN01_labels.tsv"
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()

    assert tsv.read_text().splitlines()[0] == "cell_id\tcell_type\tsample"
    annotations = read_annotations(str(tsv))
    assert annotations.columns.tolist() == ["cell_id", "cell_type", "sample"]
    assert dict(zip(annotations["cell_id"], annotations["cell_type"], strict=True)) == expected
    assert set(annotations["sample"]) == {"TEN01"}
    assert annotations["cell_id"].is_monotonic_increasing
    model, evaluation = train_classifier(project["cells"], annotations, n_estimators=20, cv_folds=3)
    assert model["classes"] == ["cd8_t_cell", "keratinocyte"]
    assert evaluation["n_cells"] == 6
