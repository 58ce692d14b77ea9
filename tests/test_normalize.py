"""limma's removeBatchEffect against R (tests/data/limma/make_batch_reference.R)."""

import numpy as np
import pandas as pd
import pytest

from dvp_pipeline.normalize import remove_batch_effect


@pytest.mark.parametrize(
    ("reference", "factors"), [("rbe_batch.tsv", ["batch"]), ("rbe_batch2.tsv", ["batch", "site"])]
)
def test_remove_batch_effect_matches_limma(data_dir, reference, factors):
    y = pd.read_csv(data_dir / "limma" / "y.tsv", sep="\t")
    ref = pd.read_csv(data_dir / "limma" / reference, sep="\t")
    batches = pd.DataFrame(
        {"batch": ["b1", "b2", "b3", "b1", "b2", "b3", "b1", "b2"], "site": list("xxyyxyxy")}, index=y.columns
    )[factors]
    groups = pd.Series(["TEN"] * 4 + ["MPR"] * 4, index=y.columns)
    ours = remove_batch_effect(y, batches, groups)
    assert ours.isna().equals(ref.isna())
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), rtol=1e-10, atol=1e-10)


def test_remove_batch_effect_removes_a_planted_shift():
    rng = np.random.default_rng(4)
    runs = [f"r{i}" for i in range(8)]
    clean = pd.DataFrame(rng.normal(20, 0.2, (50, 8)), columns=runs)
    batch = pd.DataFrame({"batch": ["a", "b"] * 4}, index=runs)
    shifted = clean + np.where(batch["batch"] == "b", 2.0, 0.0)
    groups = pd.Series(["x"] * 4 + ["y"] * 4, index=runs)
    fixed = remove_batch_effect(shifted, batch, groups)
    gap = fixed.loc[:, batch["batch"] == "b"].mean(axis=1) - fixed.loc[:, batch["batch"] == "a"].mean(axis=1)
    assert np.abs(gap).max() < 0.5 < 2.0
    assert remove_batch_effect(shifted, batch.iloc[:, :0], groups).equals(shifted)
