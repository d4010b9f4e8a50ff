"""Data sources for bigmodels: ``load_dataset(source)`` is the one entry point."""

from bigmodels.data.dataset import Dataset, DatasetInfo
from bigmodels.data.loading import DEFAULT_SOURCE, load_dataset
from bigmodels.data.sources import EMBEDDED_DATASETS

__all__ = ["DEFAULT_SOURCE", "EMBEDDED_DATASETS", "Dataset", "DatasetInfo", "load_dataset"]
