"""A user's own data from a file: CSV, `.npz` or Parquet, one example per row.

`read` gives a `Table`: the features as a float64 matrix, the target as
class indices (with the label of each class kept, so that predictions can be given
back as the labels the file used) or as real numbers for a regression. It reads in
chunks of rows into a matrix allocated once, so that memory stays near the size of the
result, and names the row and the column of the first value it cannot use.

- **CSV**: an optional header row (detected when not told: a header holds a name where
  the row below holds a number), comma-separated; the target column by name, by index
  (negative counts from the end), or by default the last.
- **.npz**: members `X` (2-D, numbers) and `y` (1-D: numbers or strings), read
  without pickle.
- **Parquet** (`.parquet`, through pyarrow: `pip install pyarrow`): columns by name,
  as in CSV.

A file with exactly `n_features` columns (given by a network that predicts) has no
target; with one more, the target is taken out as above.

What the target is, when not told (`task`): labels that are not numbers, or whole
numbers of at most 50 distinct values, are classes; other numbers a regression's
targets. Class labels are sorted (as `numpy.unique` sorts them), so index k is
`classes[k]`; numeric labels are written as the numbers they are (`"3"`, `"0.5"`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CHUNK_ROWS", "Table", "read"]

CHUNK_ROWS = 65536  # rows converted at a time
_MAX_CLASSES = 50  # whole-number targets with more distinct values are a regression's


@dataclass(frozen=True)
class Table:
    """Rows read from a file. `X`: float64 `(N, len(features))`; `y`: int64 class
    indices or float64 targets `(N,)`, None when the file has no target column;
    `classes`: the label of each class index (None for a regression)."""

    X: np.ndarray
    y: np.ndarray | None
    features: tuple[str, ...]
    target: str | None
    task: str
    classes: tuple[str, ...] | None


def read(
    path: str | os.PathLike,
    target: str | int | None = None,
    *,
    task: str | None = None,
    classes: Sequence[str] | None = None,
    n_features: int | None = None,
    header: bool | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Table:
    """The rows of the CSV, `.npz` or Parquet file at `path`.

    `target`: the target column's name or index (default: the last column).
    `task`: `"classification"` or `"regression"` (default: inferred from the target).
    `classes`: the labels a network was trained on, to map the target onto (a label
    not among them is an error). `n_features`: how many feature columns to expect; a
    file with exactly that many has no target. `header`: whether a CSV file's first row
    names its columns (default: detected). Raises `ValueError` naming the file, the row
    and the column of the first problem."""
    path = Path(path)
    if task not in (None, "classification", "regression"):
        raise ValueError(f"task must be 'classification', 'regression' or None (inferred), got {task!r}")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        X, raw, features, name = _npz(path, n_features)
    elif suffix in (".parquet", ".pq"):
        X, raw, features, name = _parquet(path, target, n_features, chunk_rows)
    elif suffix in (".csv", ".txt", ".tsv") or suffix == "":
        X, raw, features, name = _csv(path, target, n_features, header, chunk_rows)
    else:
        raise ValueError(f"{path}: xpbp reads .csv, .npz and .parquet files, not {suffix!r} ones")
    if len(X) == 0:
        raise ValueError(f"{path} holds no rows of data")
    if raw is None:
        return Table(X, None, features, None, task or "classification", tuple(classes) if classes is not None else None)
    y, task, labels = _target(path, name, raw, task, classes)
    return Table(X, y, features, name, task, labels)


# ---------------------------------------------------------------------- targets


def _target(
    path: Path, name: str, raw: np.ndarray, task: str | None, classes: Sequence[str] | None
) -> tuple[np.ndarray, str, tuple[str, ...] | None]:
    """The target as indices or numbers, its task, and the class labels."""
    numbers, names, index = _values(path, name, raw)
    if task is None:
        whole = numbers is not None and bool((numbers == np.floor(numbers)).all())
        few = numbers is None or (whole and len(np.unique(numbers)) <= _MAX_CLASSES)
        task = "classification" if few else "regression"
    if task == "regression":
        if numbers is None:
            row = int(np.argmax([_number(v) is None for v in names[index]]))
            raise ValueError(
                f"{path}, row {row + 1}, column {name!r}: {str(names[index[row]])!r} is not a number, and a regression's "
                "targets must be (for class labels, use task classification)"
            )
        return numbers, task, None
    if numbers is not None:  # the distinct values named once each, not once per row
        values, index = np.unique(numbers, return_inverse=True)
        names = np.array([_label(v) for v in values])
    if classes is None:
        return index.astype(np.int64), task, tuple(str(c) for c in names)
    known = {c: k for k, c in enumerate(classes)}
    y = np.array([known.get(str(c), -1) for c in names], dtype=np.int64)[index]
    if (y < 0).any():
        row = int(np.argmax(y < 0))
        raise ValueError(
            f"{path}, row {row + 1}, column {name!r}: label {str(names[index[row]])!r} is not one of the {len(classes)} "
            f"classes the network was trained on ({', '.join(map(repr, classes[:10]))}{', ...' if len(classes) > 10 else ''})"
        )
    return y, task, tuple(classes)


_MISSING = ("", "na", "n/a", "nan", "null", "none")  # what a missing number is written as


def _values(path: Path, name: str, raw: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """The target as float64 numbers when every value is one (else None), and as its
    distinct texts and each row's index into them. A missing or non-finite target is
    refused, and so is a column of numbers with missing markers (`NA`, `null`) among them."""
    if raw.dtype.kind in "biuf":
        numbers = raw.astype(np.float64)
        bad = ~np.isfinite(numbers)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"{path}, row {row + 1}, column {name!r}: the target {numbers[row]} {_MISSING_REMEDY}")
        return numbers, np.empty(0, dtype=str), np.empty(0, dtype=np.int64)
    names, index = np.unique(np.char.strip(raw.astype(str)), return_inverse=True)
    parsed = [_number(v) if v.lower() not in _MISSING else None for v in names]
    missing = [v == "" or (p is None and _parses(v)) for v, p in zip(names, parsed)]
    if all(p is not None or v.lower() in _MISSING for v, p in zip(names, parsed)):
        missing = [p is None for p in parsed]  # numbers with missing markers among them
    if any(missing):
        row = int(np.argmax(np.asarray(missing)[index]))
        raise ValueError(f"{path}, row {row + 1}, column {name!r}: the target {str(names[index[row]])!r} {_MISSING_REMEDY}")
    if all(p is not None for p in parsed):
        return np.array(parsed, dtype=np.float64)[index], names, index
    return None, names, index


_MISSING_REMEDY = "is missing or not finite: fill it in or drop the row"


def _parses(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _label(v: float) -> str:
    return str(int(v)) if v == int(v) else repr(float(v))


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if np.isfinite(v) else None


def _as_numbers(cells: np.ndarray) -> np.ndarray | None:
    """Text cells as float64 when every one is a finite number, else None."""
    try:
        numbers = cells.astype(np.float64)
    except ValueError:
        return None
    return numbers if np.isfinite(numbers).all() else None


def _column(names: Sequence[str], target: str | int | None, path: Path) -> int:
    """The index of the target column among `names`."""
    if target is None:
        return len(names) - 1
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not -len(names) <= target < len(names):
            raise ValueError(f"{path} has {len(names)} columns: target index {target} is out of range")
        return int(target) % len(names)
    if isinstance(target, str):
        if target in names:
            return list(names).index(target)
        if target.lstrip("-").isdigit():
            return _column(names, int(target), path)
        shown = ", ".join(map(repr, names[:12])) + (", ..." if len(names) > 12 else "")
        raise ValueError(f"{path} has no column {target!r}; its columns are {shown}")
    raise ValueError(f"target must be a column's name or index, got {target!r}")


def _split_columns(
    names: Sequence[str], target: str | int | None, n_features: int | None, path: Path
) -> tuple[int | None, tuple[str, ...]]:
    """Which column is the target (None: no target) and the feature columns' names."""
    if n_features is not None and len(names) == n_features:
        return None, tuple(names)
    if n_features is not None and len(names) != n_features + 1:
        raise ValueError(
            f"{path} has {len(names)} columns, and the network takes {n_features} features: give a file with "
            f"{n_features} feature columns, and optionally the target"
        )
    if len(names) < 2:
        raise ValueError(f"{path} has {len(names)} column: it needs at least one feature and the target")
    t = _column(names, target, path)
    return t, tuple(n for i, n in enumerate(names) if i != t)


# ---------------------------------------------------------------------- CSV


def _csv(
    path: Path, target: str | int | None, n_features: int | None, header: bool | None, chunk_rows: int
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...], str]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = csv.reader(f, delimiter=delimiter)
        first, second = next(rows, None), next(rows, None)
    if first is None:
        raise ValueError(f"{path} is empty")
    if header is None:
        header = _is_header(first, second, target)
    names = [c.strip() for c in first] if header else [str(i) for i in range(len(first))]
    t, features = _split_columns(names, target, n_features, path)
    n = _count(path, delimiter, len(names), header)
    X, numbers = np.empty((n, len(features)), dtype=np.float64), np.empty(n if t is not None else 0, dtype=np.float64)
    texts = False  # whether a target cell is not a finite number
    keep = [i for i in range(len(names)) if i != t]
    done = 0
    for start, chunk in _chunks(path, delimiter, header, chunk_rows):
        X[done : done + len(chunk)] = _floats(chunk, keep, start, [names[i] for i in keep], path)
        if t is not None and not texts:
            values = _as_numbers(np.array([r[t] for r in chunk]))
            texts = values is None
            if values is not None:
                numbers[done : done + len(chunk)] = values
        done += len(chunk)
    raw = None if t is None else numbers if not texts else _texts(path, delimiter, header, t, chunk_rows)
    return X, raw, features, (names[t] if t is not None else "")


def _texts(path: Path, delimiter: str, header: bool, t: int, chunk_rows: int) -> np.ndarray:
    """Column `t` as text, read again: the same for every chunk size."""
    return np.concatenate([np.array([r[t] for r in chunk]) for _, chunk in _chunks(path, delimiter, header, chunk_rows)])


def _is_header(first: list[str], second: list[str] | None, target: str | int | None) -> bool:
    """A header names the target column given by name, or holds a name where the row
    below holds a number, or holds names only (an empty cell, or `NA` and the like, is no
    name: it may be a missing value, or the header of an index column)."""
    cells = [c.strip() for c in first]
    if isinstance(target, str) and target in cells and not target.lstrip("-").isdigit():
        return True
    missing = [c.lower() in _MISSING for c in cells]  # a missing value is no name
    names = [not gap and _number(c) is None for c, gap in zip(cells, missing)]
    if all(name or gap for name, gap in zip(names, missing)) and any(names):
        return True
    return second is not None and any(name and _number(c) is not None for name, c in zip(names, second))


def _count(path: Path, delimiter: str, width: int, header: bool) -> int:
    """The number of data rows, each checked to have `width` cells."""
    n = 0
    with open(path, newline="", encoding="utf-8-sig") as f:
        for line, row in enumerate(csv.reader(f, delimiter=delimiter), start=1):
            if not row:
                continue
            if len(row) != width:
                raise ValueError(f"{path}, line {line}: {len(row)} cells where the first row has {width}")
            n += 1
    return n - int(header)


def _chunks(path: Path, delimiter: str, header: bool, chunk_rows: int) -> Iterator[tuple[int, list[list[str]]]]:
    """(number of the chunk's first data row, its rows), `chunk_rows` rows at a time."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = (r for r in csv.reader(f, delimiter=delimiter) if r)
        if header:
            next(rows)
        chunk: list[list[str]] = []
        start = 1
        for row in rows:
            chunk.append(row)
            if len(chunk) == chunk_rows:
                yield start, chunk
                start, chunk = start + len(chunk), []
        if chunk:
            yield start, chunk


def _floats(chunk: list[list[str]], keep: list[int], start: int, names: list[str], path: Path) -> np.ndarray:
    """The feature cells of `chunk` as float64, or the first bad one named by row and column."""
    cells = [[r[i] for i in keep] for r in chunk]
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        values = None
    if values is not None and np.isfinite(values).all():
        return values
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            if _number(cell) is None:
                raise ValueError(f"{path}, row {start + r}, column {names[c]!r}: {_why(cell)}")
    raise AssertionError("unreachable: a chunk that failed to convert holds a bad cell")


def _why(cell: Any) -> str:
    text = str(cell).strip()
    if text == "" or text.lower() in ("na", "nan", "null", "none"):
        return f"{cell!r} is a missing value: fill it in or drop the row (features must all be numbers)"
    if _number(text) is None and text.lower().lstrip("+-") in ("inf", "infinity"):
        return f"{cell!r} is not finite: features must be finite numbers"
    return f"{cell!r} is not a number: features must be numbers (encode categories as numbers or one column per category)"


# ---------------------------------------------------------------------- .npz and Parquet


def _npz(path: Path, n_features: int | None) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...], str]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            members = set(archive.files)
            if "X" not in members:
                raise ValueError(
                    f"{path} has no member X (it holds {', '.join(sorted(members)) or 'nothing'}): "
                    "an .npz data file holds X (rows of features) and y (the targets)"
                )
            X, raw = archive["X"], archive["y"] if "y" in members else None
    except (OSError, EOFError) as e:
        raise ValueError(f"{path} is not a readable .npz file: {e}") from None
    except ValueError as e:
        if "pickle" in str(e):
            raise ValueError(f"{path} holds Python objects, which xpbp does not unpickle: store numbers or strings") from None
        raise
    if X.ndim != 2 or X.dtype.kind not in "biuf":
        raise ValueError(f"{path}: X must be a 2-D array of numbers, got shape {X.shape} of {X.dtype}")
    X = X.astype(np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{path}, row {r + 1}, column {c}: {X[r, c]} is not finite: features must be finite numbers")
    features = tuple(str(i) for i in range(X.shape[1]))
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{path}: X has {X.shape[1]} columns, and the network takes {n_features} features")
    if raw is None:
        if n_features is None:
            raise ValueError(f"{path} has no member y: an .npz data file to train on holds X and y")
        return X, None, features, ""
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw.ravel()
    if raw.ndim != 1 or len(raw) != len(X):
        raise ValueError(f"{path}: y must be one target per row of X, shape ({len(X)},), got {raw.shape}")
    return X, raw, features, "y"


def _parquet(
    path: Path, target: str | int | None, n_features: int | None, chunk_rows: int
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...], str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RuntimeError(
            "reading Parquet files needs pyarrow: pip install pyarrow (or pip install -e '.[parquet]' in a checkout)"
        ) from None
    try:
        file = pq.ParquetFile(path)
    except Exception as e:  # pyarrow's own error types
        raise ValueError(f"{path} is not a readable Parquet file: {e}") from None
    names = list(file.schema_arrow.names)
    t, features = _split_columns(names, target, n_features, path)
    keep = [i for i in range(len(names)) if i != t]
    X = np.empty((file.metadata.num_rows, len(keep)), dtype=np.float64)
    targets, done = [], 0
    for batch in file.iter_batches(batch_size=chunk_rows):
        for j, i in enumerate(keep):
            X[done : done + batch.num_rows, j] = _parquet_numbers(batch.column(i), done, names[i], path)
        if t is not None:
            column = batch.column(t)
            if column.null_count:
                row = done + int(np.argmax(np.asarray(column.is_null())))
                raise ValueError(f"{path}, row {row + 1}, column {names[t]!r}: the target is missing")
            targets.append(np.asarray(column.to_numpy(zero_copy_only=False)))
        done += batch.num_rows
    raw = np.concatenate(targets).astype(str if targets and targets[0].dtype.kind == "O" else None) if t is not None else None
    return X, raw, features, (names[t] if t is not None else "")


def _parquet_numbers(column: Any, done: int, name: str, path: Path) -> np.ndarray:
    if column.null_count:
        row = done + int(np.argmax(np.asarray(column.is_null())))
        raise ValueError(f"{path}, row {row + 1}, column {name!r}: {_why('')}")
    values = np.asarray(column.to_numpy(zero_copy_only=False))
    if values.dtype.kind not in "biuf":
        raise ValueError(f"{path}, column {name!r}: {_why(values[0])}")
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        row = done + int(np.argmax(~np.isfinite(values)))
        raise ValueError(f"{path}, row {row + 1}, column {name!r}: {_why(str(values[row - done]))}")
    return values
