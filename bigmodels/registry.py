"""Name -> builder registry, so apps and tests can ask for a model family by name."""

from collections.abc import Callable

_BUILDERS: dict[str, Callable] = {}


def register_model(name: str) -> Callable[[Callable], Callable]:
    """Decorator that registers a model builder under ``name``.

    Example:
        @register_model("my_model")
        def my_model(*, num_classes=10): ...
    """

    def decorator(builder: Callable) -> Callable:
        if name in _BUILDERS:
            raise ValueError(f"a model named '{name}' is already registered; pick another name")
        _BUILDERS[name] = builder
        return builder

    return decorator


def get_model(name: str, **kwargs):
    """Builds the registered model ``name`` with the builder's keyword arguments."""
    return get_builder(name)(**kwargs)


def _register_builtin_models() -> None:
    import bigmodels.models  # noqa: F401 - importing the package registers every family


def get_builder(name: str) -> Callable:
    """Returns the builder function registered as ``name`` (to inspect its arguments)."""
    _register_builtin_models()
    if name not in _BUILDERS:
        raise ValueError(f"unknown model '{name}'; choose one of: {', '.join(list_models())}")
    return _BUILDERS[name]


def list_models() -> list[str]:
    """Names of all registered builders, sorted."""
    _register_builtin_models()
    return sorted(_BUILDERS)
