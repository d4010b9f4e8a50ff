"""One module per kind of model; ``task_of`` answers "what kind of model is this?" once.

The registry (``bigmodels.models.registry``) records each builder's task name; this package maps
the name to the task object the workflows ask for the parts that differ.
"""

from bigmodels.models.registry import get_task_name
from bigmodels.tasks.base import BundleParts, ExportSubject, Task
from bigmodels.tasks.image_classification import TASK as IMAGE_CLASSIFICATION
from bigmodels.tasks.image_generation import TASK as IMAGE_GENERATION
from bigmodels.tasks.text_classification import TASK as TEXT_CLASSIFICATION

TASKS = {task.name: task for task in (IMAGE_CLASSIFICATION, TEXT_CLASSIFICATION, IMAGE_GENERATION)}


def task_of(model_name: str) -> Task:
    """The task of a registered model (raises ValueError for an unknown model)."""
    return TASKS[get_task_name(model_name)]


def default_model_for(data_kind: str) -> str:
    """The model train_run picks for this kind of data when none is named."""
    return next(t.default_model for t in TASKS.values() if t.data_kind == data_kind and t.default_model)


__all__ = ["TASKS", "BundleParts", "ExportSubject", "Task", "default_model_for", "task_of"]
