"""Reading a user's own data files (xpbp.tables): CSV, .npz and Parquet, checked against
pandas and NumPy reading the same files, with bad cells named by row and column."""

import tracemalloc

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from xpbp import datasets, tables


@pytest.fixture(scope="module")
def cancer():
    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    return frame


def test_csv_with_a_header_matches_pandas_and_maps_string_labels(tmp_path, cancer):
    path = tmp_path / "cancer.csv"
    cancer.to_csv(path, index=False)
    table = datasets.read(path)  # the target is the last column by default
    want = pd.read_csv(path)
    assert table.features == tuple(want.columns[:-1]) and table.target == "target"
    assert np.array_equal(table.X, want.iloc[:, :-1].to_numpy(np.float64))
    assert table.task == "classification" and table.classes == ("benign", "malignant")
    assert np.array_equal(np.asarray(table.classes)[table.y], want["target"].to_numpy())


def test_csv_without_a_header_and_a_target_by_index(tmp_path):
    X, y = load_wine(return_X_y=True)
    path = tmp_path / "wine.csv"
    np.savetxt(path, np.column_stack([y, X]), delimiter=",", fmt="%.10g")  # the target first, no header
    table = tables.read(path, target=0)
    assert table.features == tuple(str(i) for i in range(1, 14))
    assert np.allclose(table.X, X, rtol=1e-9, atol=0) and table.classes == ("0", "1", "2")
    assert np.array_equal(table.y, y)
    assert np.array_equal(tables.read(path, target="0").y, y)  # an index given as text, as the CLI gives it


def test_a_target_by_name_anywhere_and_a_regression_inferred(tmp_path):
    data = load_diabetes(as_frame=True).frame
    path = tmp_path / "diabetes.csv"
    data[["target", *data.columns[:-1]]].to_csv(path, index=False)
    table = tables.read(path, target="target")
    assert table.task == "regression" and table.classes is None
    assert np.array_equal(table.y, data["target"].to_numpy(np.float64))
    assert np.allclose(table.X, data.iloc[:, :-1].to_numpy(), rtol=1e-15, atol=1e-17)
    assert tables.read(path, target="target", task="classification").task == "classification"  # told, not inferred


@pytest.mark.parametrize(
    "cell, words",
    [("", "missing value"), ("NA", "missing value"), ("abc", "is not a number"), ("inf", "not finite")],
)
def test_a_bad_cell_is_named_by_row_and_column(tmp_path, cell, words):
    rows = ["a,b,label"] + [f"{i},{i * 2},x" for i in range(10)]
    rows[7] = f"6,{cell},x"  # data row 7 (the header is line 1)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=rf"bad.csv, row 7, column 'b': .*{words}"):
        tables.read(path, chunk_rows=4)  # the bad row in the second chunk


def test_ragged_rows_unknown_columns_and_labels_are_refused(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b,y\n1,2,0\n1,2\n")
    with pytest.raises(ValueError, match="line 3: 2 cells where the first row has 3"):
        tables.read(path)
    path.write_text("a,b,y\n1,2,0\n3,4,1\n")
    with pytest.raises(ValueError, match="no column 'z'; its columns are 'a', 'b', 'y'"):
        tables.read(path, target="z")
    with pytest.raises(ValueError, match=r"row 2, column 'y': label '1' is not one of the 2 classes the network was trained on \('0', '2'\)"):
        tables.read(path, classes=("0", "2"))
    assert tables.read(path, n_features=3).y is None  # as many columns as the network's features: no target


def test_npz_members_and_string_labels(tmp_path):
    X, y = load_wine(return_X_y=True)
    names = np.array(["barolo", "grignolino", "barbera"])[y]
    np.savez(tmp_path / "wine.npz", X=X, y=names)
    table = tables.read(tmp_path / "wine.npz")
    assert np.array_equal(table.X, X) and table.classes == ("barbera", "barolo", "grignolino")
    assert np.array_equal(np.asarray(table.classes)[table.y], names)
    np.savez(tmp_path / "no_x.npz", features=X)
    with pytest.raises(ValueError, match="has no member X"):
        tables.read(tmp_path / "no_x.npz")
    np.savez(tmp_path / "obj.npz", X=X, y=np.array(list(names), dtype=object))
    with pytest.raises(ValueError, match="holds Python objects"):
        tables.read(tmp_path / "obj.npz")


def test_parquet_matches_csv(tmp_path, cancer):
    pytest.importorskip("pyarrow")
    cancer.to_parquet(tmp_path / "c.parquet")
    cancer.to_csv(tmp_path / "c.csv", index=False)
    a, b = tables.read(tmp_path / "c.parquet", chunk_rows=100), tables.read(tmp_path / "c.csv")
    assert a.features == b.features and a.classes == b.classes
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    broken = cancer.copy()
    broken.iloc[300, 2] = np.nan
    broken.to_parquet(tmp_path / "nan.parquet")
    with pytest.raises(ValueError, match="row 301, column 'mean perimeter': .*missing value"):
        tables.read(tmp_path / "nan.parquet", chunk_rows=128)


def test_a_file_many_chunks_long_is_read_in_bounded_memory(tmp_path):
    n, d, chunk = 60_000, 8, 2_000
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)).round(6)
    path = tmp_path / "big.csv"
    np.savetxt(path, np.column_stack([X, rng.integers(0, 3, n)]), delimiter=",", fmt="%.6f")
    tracemalloc.start()
    table = tables.read(path, chunk_rows=chunk)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.array_equal(table.X, X) and len(table.y) == n
    result = table.X.nbytes + table.y.nbytes
    # Beside the result: a chunk's rows and a few vectors of N, never the file's text (5 MB here; as
    # Python strings, 40 MB) nor all its rows at once.
    assert peak - result < 10 * table.y.nbytes + (2 << 20), (peak, result)
    assert peak - result < path.stat().st_size


@pytest.mark.parametrize("chunk_rows", [2, 3, 1000])
def test_class_labels_do_not_depend_on_the_chunk_size(tmp_path, chunk_rows):
    path = tmp_path / "mixed.csv"
    labels = ["1.0", "1", "2", "1.0", "cat", "2"]  # text from the fifth row on: every label is text, as written
    path.write_text("a,y\n" + "".join(f"{i},{c}\n" for i, c in enumerate(labels)))
    table = tables.read(path, chunk_rows=chunk_rows)
    assert table.classes == ("1", "1.0", "2", "cat")
    assert [table.classes[k] for k in table.y] == labels
    path.write_text("a,y\n" + "".join(f"{i},{c}\n" for i, c in enumerate(["1.0", "1", "2", "2.0"])))
    numbers = tables.read(path, chunk_rows=chunk_rows)  # numbers only: the same number is the same class
    assert numbers.classes == ("1", "2") and numbers.y.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize(
    "cells, row",
    [
        (["a", "b", "", "a"], 3),  # a text label left out
        (["1", "2", "nan", "1"], 3),
        (["1", "2", "1", "NA"], 4),  # a missing marker among numbers
        (["0.5", "inf", "1.5", "2.5"], 2),
        (["x", "1e400", "y", "x"], 2),  # a number too large for float64, among text labels
    ],
)
def test_a_missing_or_non_finite_target_is_refused_by_row(tmp_path, cells, row):
    path = tmp_path / "t.csv"
    path.write_text("a,y\n" + "".join(f"{i},{c}\n" for i, c in enumerate(cells)))
    for chunk_rows in (2, 100):
        with pytest.raises(ValueError, match=rf"row {row}, column 'y': the target .* is missing or not finite: fill it in"):
            tables.read(path, chunk_rows=chunk_rows)
    np.savez(tmp_path / "t.npz", X=np.zeros((3, 2)), y=np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match=r"row 2, column 'y': the target nan is missing"):
        tables.read(tmp_path / "t.npz")


def test_header_detection(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("1,2,label\n0.5,0.25,cat\n0.1,0.2,dog\n")  # names that look like numbers, found by the target's name
    table = tables.read(path, target="label")
    assert table.features == ("1", "2") and len(table.X) == 2 and table.classes == ("cat", "dog")
    path.write_text("1.0,,cat\n2.0,1.0,dog\n3.0,2.0,cat\n")  # no header: its first row misses a value, and is not dropped
    with pytest.raises(ValueError, match=r"row 1, column '1': '' is a missing value"):
        tables.read(path)
    path.write_text("NA,2,cat\n1.5,2,dog\n3,4,cat\n")  # no header either: a missing marker is no name
    with pytest.raises(ValueError, match=r"row 1, column '0': 'NA' is a missing value"):
        tables.read(path)
    path.write_text(",a,y\n0,1.5,0\n1,2.5,1\n")  # pandas' index column: a header with an empty first name
    assert tables.read(path).features == ("", "a")
    path.write_text("0.5,1.5,0\n1.5,2.5,1\n")
    assert len(tables.read(path).X) == 2  # numbers only: no header


def test_the_task_from_how_many_whole_numbers_and_a_target_counted_from_the_end(tmp_path):
    for distinct, task in ((50, "classification"), (51, "regression")):
        path = tmp_path / f"{distinct}.csv"
        path.write_text("a,y,b\n" + "".join(f"{i},{i % distinct},{-i}\n" for i in range(120)))
        table = tables.read(path, target=-2)
        assert table.task == task and table.target == "y" and table.features == ("a", "b")
        assert np.array_equal(table.X[:, 1], -np.arange(120))
