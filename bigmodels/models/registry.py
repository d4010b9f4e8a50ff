"""Name -> builder and task registry, so apps and tests can ask for a model family by name.

Importing this module runs ``bigmodels/models/__init__.py`` first, which imports every builder
module, so the built-in families are always registered. Only trainable families are registered;
each names its task (image_classification, text_classification, image_generation), the one
answer to "what kind of model is this?".
"""

from collections.abc import Callable

_BUILDERS: dict[str, Callable] = {}
_TASKS: dict[str, str] = {}


def register_model(name: str, *, task: str) -> Callable[[Callable], Callable]:
    """Decorator that registers a model builder under ``name``, trained and exported as ``task``.

    Example:
        @register_model("my_model", task="image_classification")
        def my_model(*, num_classes=10): ...
    """

    def decorator(builder: Callable) -> Callable:
        if name in _BUILDERS:
            raise ValueError(f"a model named '{name}' is already registered; pick another name")
        _BUILDERS[name] = builder
        _TASKS[name] = task
        return builder

    return decorator


def get_model(name: str, **kwargs):
    """Builds the registered model ``name`` with the builder's keyword arguments."""
    return get_builder(name)(**kwargs)


def get_builder(name: str) -> Callable:
    """Returns the builder function registered as ``name`` (to inspect its arguments)."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model '{name}'; choose one of: {', '.join(list_models())}")
    return _BUILDERS[name]


def get_task_name(name: str) -> str:
    """The task the registered model ``name`` belongs to."""
    get_builder(name)
    return _TASKS[name]


def list_models() -> list[str]:
    """Names of all registered builders, sorted."""
    return sorted(_BUILDERS)
