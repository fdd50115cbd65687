"""Datasets, the paper's split and the image cache (issue 3).

```python
from lmfloss.data import load_splits, make_dataset, list_adapters

splits = load_splits("synthetic")                      # or "ham10000", root="/data/HAM"
splits.class_names, splits.class_counts("train")
ds = make_dataset(splits, "train", image_size=64)      # ds[i] -> (float32 [3,S,S], int64, i)
```
See ``docs/ARCHITECTURE.md`` for the contract.
"""

import importlib
from typing import Any

from lmfloss.data.adapters import ADAPTERS, Adapter, get_adapter, list_adapters
from lmfloss.data.load import dataset_for, load_splits, splits_for
from lmfloss.data.records import SPLIT_NAMES, DatasetIndex, Record
from lmfloss.data.splits import Splits, paper_split, paper_split_sizes

__all__ = [
    "ADAPTERS",
    "SPLIT_NAMES",
    "Adapter",
    "DatasetIndex",
    "ImageDataset",
    "Record",
    "Splits",
    "dataset_for",
    "get_adapter",
    "list_adapters",
    "load_splits",
    "make_dataset",
    "paper_split",
    "paper_split_sizes",
    "splits_for",
]

# The torch datasets load torch; ``lmfloss split`` and ``datasets`` do without it.
_LAZY = {"ImageDataset": "lmfloss.data.dataset", "make_dataset": "lmfloss.data.dataset"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lmfloss.data' has no attribute {name!r}")
