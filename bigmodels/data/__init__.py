"""Data sources for bigmodels: ``load_dataset(source)`` is the one entry point; ``read_table`` is
how it reads a CSV/TSV file's texts and labels (rows, quotes, skipped lines)."""

from bigmodels.data.dataset import Dataset, DatasetInfo
from bigmodels.data.loading import DEFAULT_SOURCE, load_dataset
from bigmodels.data.sources import EMBEDDED_DATASETS
from bigmodels.data.text import read_table

__all__ = ["DEFAULT_SOURCE", "EMBEDDED_DATASETS", "Dataset", "DatasetInfo", "load_dataset", "read_table"]
