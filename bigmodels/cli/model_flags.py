"""The model-argument flags, derived from the registered builders' signatures.

One flag per argument name (``--width-multiplier`` sets ``width_multiplier``), grouped by task,
its type from the builder's default (or annotation) and its help from the builder's docstring
(``Args:``), with ``HELP`` where a hand-written line says more. Default None, so the builder's own
default applies. A new builder argument is a new flag without editing this file; only the
arguments the data (or ``--seed``) decides get none.
"""

import argparse
import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import bigmodels

# Builder arguments train_run fills from the data (or --seed): they get no flag.
DATA_DERIVED = frozenset(
    {"num_classes", "input_shape", "image_shape", "sequence_length", "vocabulary_size", "seed"}
)
# Builder arguments that a training flag of its own sets (--backbone): no second flag.
SET_BY_TRAINING_FLAGS = frozenset({"backbone"})

# Help that says more than the builder's docstring: the CLI's own choices, examples.
HELP = {
    "variant": "compact (plain 3x3 convolutions, for digit-like data), mobile (MobileNet-style "
    "depthwise-separable blocks, for colour photos), resnet (residual stacks, for 32x32 colour "
    "images; see --recipe cifar10_tiny), or auto (chosen from the data)",
    "dropout": "dropout rate (every family)",
    "width": "embedding and model width",
    "depth": "number of Transformer encoder blocks",
    "label_smoothing": "classifiers: smoothing of the one-hot targets (e.g. 0.1; --recipe cifar10_tiny "
    "uses 0.1); DCGAN: one-sided smoothing of the discriminator's real targets",
    "code_classes": "categories of an InfoGAN-style code read from the latent vector (e.g. 10; 0: off)",
    "code_weight": "weight of the code's cross-entropy in both losses",
    "code_from_labels": "learn the code from the class labels (AC-GAN): category c draws class c",
}

# Flags whose default is not the builder's: "auto" lets train_run choose from the data, and the
# flag is passed on only when it says something else.
FLAG_DEFAULTS = {"variant": "auto"}
# Off in the builder, but on by default for some data (a few hundred photos): --no-NAME turns it off.
ON_FOR_SOME_DATA = frozenset({"flip_average"})

FLAG_TYPES = (bool, int, float, str)


def whole_numbers(text: str) -> tuple[int, ...]:
    """A flag's comma-separated whole numbers ("12,20,40"), for a builder argument whose default
    is a tuple of ints (the resnet variant's stack_filters)."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not comma-separated whole numbers; write them like 12,32,64"
        ) from None


@dataclass
class ModelFlag:
    """One builder argument as a flag: ``--name-with-dashes``, dest ``name``, default None."""

    name: str
    type: type | Callable[[str], tuple]  # whole_numbers for a tuple of ints
    doc: str = ""
    defaults: dict = field(default_factory=dict)  # builder name -> its default

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def help(self, flag_names) -> str:
        text = HELP.get(self.name) or _first_sentence(self.doc)
        # ``base_filters`` in a docstring is --base-filters on the command line.
        text = re.sub(
            r"``(\w+)``", lambda m: "--" + m[1].replace("_", "-") if m[1] in flag_names else m[1], text
        )
        note = _default_note(self.name, self.defaults)
        return f"{text} ({note})".replace("%", "%%") if note else text.replace("%", "%%")


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=\.)\s+(?=[A-Z])", text.strip())[0].rstrip(".")


def _default_note(name: str, defaults: dict) -> str:
    """The help's default: one value, or each builder's where they differ; "" when it says nothing."""
    if name in FLAG_DEFAULTS:
        return f"default: {FLAG_DEFAULTS[name]}"
    shown = {
        model: ",".join(map(str, value)) if isinstance(value, tuple) else value  # as the flag is written
        for model, value in defaults.items()
        if value is not None and value is not False
    }
    if not shown:
        return ""
    if len(set(map(repr, defaults.values()))) == 1:
        return f"default: {next(iter(shown.values()))}"
    return "default: " + ", ".join(f"{value} for {model}" for model, value in shown.items())


def argument_docs(docstring: str) -> dict[str, str]:
    """The ``Args:`` section of a Google-style docstring: argument name -> its text, on one line."""
    lines = docstring.splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if line.strip() == "Args:"), len(lines))
    docs, current, indent = {}, None, None
    for line in lines[start:]:
        if not line.strip() or not line[:1].isspace():
            break  # the section ends at a blank line or the next heading
        depth = len(line) - len(line.lstrip())
        indent = indent or depth
        entry = re.fullmatch(r"(\w+)(?: \([^)]*\))?:\s*(.*)", line.strip())
        if depth == indent and entry:
            current = entry[1]
            docs[current] = entry[2]
        elif current:
            docs[current] += " " + line.strip()
    return docs


def flag_type(parameter: inspect.Parameter) -> type | Callable[[str], tuple] | None:
    """bool, int, float or str from the default (else the annotation), ``whole_numbers`` for a tuple
    of ints; None: no flag carries it."""
    if parameter.kind not in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD):
        return None
    default = parameter.default
    if isinstance(default, tuple) and default and all(type(value) is int for value in default):
        return whole_numbers
    if default is not None and default is not parameter.empty:
        return type(default) if type(default) in FLAG_TYPES else None
    annotation = parameter.annotation
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    options = [a for a in (typing.get_args(annotation) if union else (annotation,)) if a is not type(None)]
    return options[0] if len(options) == 1 and options[0] in FLAG_TYPES else None


def _merge(flag: ModelFlag, kind: type, model: str) -> None:
    if kind is flag.type:
        return
    if {kind, flag.type} == {int, float}:
        flag.type = float
        return
    raise TypeError(
        f"builders disagree on the type of '{flag.name}' ({flag.type.__name__} in "
        f"{', '.join(flag.defaults)}, {kind.__name__} in {model}); give the argument one type"
    )


@cache
def model_flag_groups() -> tuple[tuple[str, tuple[ModelFlag, ...]], ...]:
    """(group title, its flags) per task, from every registered builder's signature and docstring.

    An argument several builders take (dropout) is one flag, in the first group that has it.
    """
    # Lazy: the registry imports every builder, so Keras and TensorFlow. apps/predict.py imports
    # bigmodels.cli on devices without TensorFlow; only the training apps call this. TensorFlow's
    # C++ start-up lines are muted, as run_app does, so a bad flag stays one line.
    from bigmodels.lite.runtime import quiet_stderr

    with quiet_stderr():
        from bigmodels.models.registry import get_builder, get_task_name

        registered = bigmodels.list_models()
    families: dict[str, list[str]] = {}
    for model in registered:
        families.setdefault(get_task_name(model), []).append(model)
    flags: dict[str, ModelFlag] = {}
    groups = []
    for models in families.values():
        names = []
        for model in models:
            builder = get_builder(model)
            docs = argument_docs(inspect.getdoc(builder) or "")
            for parameter in _parameters(builder):
                kind = flag_type(parameter)
                if parameter.name in DATA_DERIVED | SET_BY_TRAINING_FLAGS or kind is None:
                    continue
                if parameter.name not in flags:
                    flags[parameter.name] = ModelFlag(parameter.name, kind)
                    names.append(parameter.name)
                flag = flags[parameter.name]
                _merge(flag, kind, model)
                flag.defaults[model] = parameter.default
                flag.doc = flag.doc or docs.get(parameter.name, "")
        if names:
            groups.append((f"model arguments ({', '.join(models)})", tuple(flags[n] for n in names)))
    return tuple(groups)


def _parameters(builder):
    try:
        return inspect.signature(builder, eval_str=True).parameters.values()
    except NameError:  # an annotation its module cannot resolve: the defaults still tell the types
        return inspect.signature(builder).parameters.values()


def add_model_flags(parser) -> None:
    """One flag per builder argument, default None so that the builder's own default applies."""
    groups = model_flag_groups()
    flag_names = {flag.name for _, flags in groups for flag in flags}
    for title, flags in groups:
        group = parser.add_argument_group(title)
        for flag in flags:
            options = {
                "dest": flag.name,
                "default": FLAG_DEFAULTS.get(flag.name),
                "help": flag.help(flag_names),
            }
            if flag.type is bool and (True in flag.defaults.values() or flag.name in ON_FOR_SOME_DATA):
                options["action"] = argparse.BooleanOptionalAction  # on by default: --no-NAME
            elif flag.type is bool:
                options["action"] = "store_true"
            else:
                options["type"] = flag.type
            group.add_argument(flag.option, **options)


def builders_taking(name: str) -> set[str]:
    """The registered builders that take the model flag ``name`` (none when no flag has it)."""
    return {
        model
        for _, flags in model_flag_groups()
        for flag in flags
        if flag.name == name
        for model in flag.defaults
    }


def model_args_from(args) -> dict:
    """The model flags' values, as train_run's model_args (None: the builder's default)."""
    model_args = {}
    for _, flags in model_flag_groups():
        for flag in flags:
            value = getattr(args, flag.name)
            if flag.name not in FLAG_DEFAULTS or value != FLAG_DEFAULTS[flag.name]:
                model_args[flag.name] = value
    return model_args
