"""The train workflow: a registered model on a data source, into a complete run folder.

The steps every kind of model shares live here; the run's task (``bigmodels.tasks``) supplies
how its data is prepared, what it trains first (the DCGAN's scoring classifier), how it fits
and what its metrics are.
"""

import shutil
import tempfile
from pathlib import Path

import keras

from bigmodels import __version__
from bigmodels.data import load_dataset
from bigmodels.models.arguments import resolve_model_args
from bigmodels.models.registry import get_builder
from bigmodels.run_folder import (
    SPLIT_OPTIONS,
    TEXT_DATA_OPTIONS,
    check_output_folder,
    staged_run_folder,
    write_json,
)
from bigmodels.run_records import RunMetrics
from bigmodels.tasks import default_model_for, task_of
from bigmodels.training.classifier import OPTIMIZER_DEFAULTS
from bigmodels.training.distribute import describe, is_chief, make_strategy
from bigmodels.training.precision import resolve_precision
from bigmodels.training.recipes import get_recipe
from bigmodels.training.settings import check_augmentation_for, check_plain_last_epochs, check_settings
from bigmodels.workflows.auto import (
    AUTO,
    auto_candidates,
    auto_may_choose,
    check_auto_request,
    train_candidates,
)
from bigmodels.workflows.backbone_settings import (
    BACKBONE_MODEL,
    TEXT_BACKBONE_MODEL,
    apply_backbone,
    backbone_record,
    backbone_schedule,
    preset_vocabulary,
)


def train_run(
    model_name: str | None,
    data_source: str | None,
    out_dir: str | Path,
    *,
    epochs: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    patience: int | None = None,
    augmentation: str | None = None,
    image_size: tuple[int, int] | None = None,
    model_args: dict | None = None,
    data_options: dict | None = None,
    tokenizer=None,
    score_classifier: str | Path | None = None,
    strategy: str = "default",
    logical_cpus: int | None = None,
    overwrite: bool = False,
    verbose: int = 1,
    callbacks: list | None = None,
    optimizer: str | None = None,
    weight_decay: float | None = None,
    label_smoothing: float | None = None,
    precision: str | None = None,
    weight_averaging: float | None = None,
    plain_last_epochs: int | None = None,
    retrain_on_all: bool | None = None,
    recipe: str | None = None,
    backbone: str | None = None,
    fine_tune_epochs: int | None = None,
    fine_tune_from: str | None = None,
    before_training=None,
) -> tuple[Path, RunMetrics]:
    """Trains a registered model on ``data_source`` (anything ``load_dataset`` takes) into the run
    folder ``out_dir`` (settings in config.json); returns (run_dir, metrics.json's metrics).

    Args:
        model_name: a registered model or "auto" (``workflows.auto``); None: the data's default.
        data_options: ``load_dataset``'s source options (text_columns, label_column, test_fraction, ...);
            tokenizer: ``TokenizerSettings`` (or a dict of them) for text; model_args: the builder's.
        epochs, batch_size, patience, learning_rate: the task's for the data (30, 64, 8, 3e-3; GAN 2e-4).
        score_classifier: the DCGAN's scoring classifier run (default: one trained into the run);
            strategy: "default", "mirrored" (every GPU or ``logical_cpus``), "multi_worker".
        optimizer, weight_decay, label_smoothing, precision, weight_averaging, plain_last_epochs,
            retrain_on_all: adam/sgd, decay, smoothing, float32/bfloat16, epochs of a moving average of
            the weights (text: 1), last epochs without cutout or mixup, retraining (``training.retrain``).
        recipe: a named recipe (``training.recipes.RECIPES``, "cifar10_tiny") filling in the rest.
        backbone: pretrained features (a run, saved_models/<name>, a keras-hub preset) under a new
            head: ``epochs`` of phase 1 (frozen), ``fine_tune_epochs`` of fine-tuning.
        before_training: (task, built model) -> None before training; a ValueError ends the run unwritten.

    Example:
        run_dir, metrics = train_run(None, "photos/", "runs/p", backbone="mobilenet_v3_small_100_imagenet")
        train_run("auto", "news.tsv", "runs/news")  # n-gram model and Transformer: the smaller if as good
    """
    request = dict(locals())  # the arguments as given: what --model auto trains each candidate with
    if model_name == AUTO:
        return _train_auto(request)
    distribution = make_strategy(strategy, logical_cpus=logical_cpus)  # before any TensorFlow op
    model_name, model_args, settings, tune = _requested(request)
    tokenizer = preset_vocabulary(tune, tokenizer)  # a text backbone's replaces a learned one
    out_dir = _check_request(model_name, settings, Path(out_dir), overwrite)
    data_options = _check_data_options(data_options)
    dataset = load_dataset(data_source, batch_size=settings["batch_size"] or 64, seed=seed,
                           image_size=image_size, **data_options)  # fmt: skip
    if model_name is None and dataset.info.kind == "text" and auto_may_choose(request):
        return _train_auto({**request, "model_name": AUTO}, kind="text")  # no model named: try them all
    settings, model_args, tune = backbone_schedule(settings, model_args, tune, dataset.info)
    model_name, chosen_by = _choose_model(model_name, dataset.info.kind)
    task = task_of(model_name)
    training = _fill_training_defaults(settings, task, dataset.info)
    dataset.batch_size = training["batch_size"]  # the data's size may choose it
    data = {"source": data_source, **_data_record(training["batch_size"], seed, image_size), **data_options}
    config = _run_config(model_name, data, {**training, "strategy": describe(distribution, strategy)},
                         chosen_by=chosen_by, recipe=recipe, transfer=tune)  # fmt: skip
    options = {"score_classifier": score_classifier, "before_training": before_training}
    steps = {"tokenizer": tokenizer, "options": options, "verbose": verbose,
             "callbacks": callbacks, "model_args": model_args or {}, "overwrite": overwrite}  # fmt: skip
    return out_dir, _train_on_every_worker(out_dir, distribution, task, dataset, config, **steps)


def _train_auto(request: dict, kind: str | None = None) -> tuple[Path, RunMetrics]:
    """train_run(model_name="auto", ...) with ``request`` its arguments: the data's ``kind``
    (loaded to find it when not given) gives the candidates; each is trained with the same
    settings, and the smallest that validation cannot tell from the best is the run."""
    check_auto_request(request)
    out_dir, overwrite = Path(request["out_dir"]), request["overwrite"]
    check_output_folder(out_dir, "run", overwrite=overwrite)
    if kind is None:
        data_options = _check_data_options(request["data_options"])
        source, seed, size = request["data_source"], request["seed"], request["image_size"]
        kind = load_dataset(source, seed=seed, image_size=size, **data_options).info.kind
    check_augmentation_for(kind, request["augmentation"])
    candidates = auto_candidates(kind)
    if len(candidates) == 1:  # nothing to choose between: the data's default model, so recorded
        return train_run(**{**request, "model_name": None})

    def train_one(model_name: str, run_dir: Path):
        return train_run(**{**request, "model_name": model_name, "out_dir": run_dir, "overwrite": False})

    return out_dir, train_candidates(train_one, candidates, out_dir, overwrite=overwrite)


def _run_config(model_name: str, data: dict, training: dict, *, chosen_by, recipe, transfer) -> dict:
    """config.json, before the task adds its own keys (model_args, tokenizer, ...)."""
    return {
        "model": model_name,
        "data": data,
        "training": training,
        "bigmodels_version": __version__,
        **({"model_chosen_by": chosen_by} if chosen_by else {}),
        **({"recipe": recipe} if recipe else {}),
        **({"backbone": backbone_record(transfer, training)} if transfer else {}),
    }


def _train_on_every_worker(
    out_dir: Path, distribution, task, dataset, config: dict, *, tokenizer, options, verbose, callbacks,
    model_args: dict, overwrite: bool,
):  # fmt: skip
    """Every worker trains; only the chief's folder is kept (the others write to a temporary one)."""
    chief = is_chief(distribution)
    write_dir = out_dir if chief else Path(tempfile.mkdtemp(prefix="bigmodels-worker-")) / out_dir.name
    with staged_run_folder(write_dir, overwrite=overwrite) as staging, distribution.scope():
        dataset = task.prepare_data(dataset, staging, tokenizer)
        metrics = _train_into(staging, task, dataset, config, model_args, options, verbose, callbacks)
    if not chief:
        shutil.rmtree(write_dir.parent, ignore_errors=True)
    return metrics


def _apply_recipe(name: str, model_name, model_args, settings: dict):
    """The recipe's model, builder arguments and settings, under what the caller gave."""
    chosen = get_recipe(name)
    if model_name not in (None, chosen.model):
        raise ValueError(f"recipe '{name}' trains {chosen.model}, not {model_name}; leave --model out")
    given_args = {k: v for k, v in (model_args or {}).items() if v is not None}
    filled = {key: chosen.training.get(key) if value is None else value for key, value in settings.items()}
    return chosen.model, {**chosen.model_args, **given_args}, filled


SETTINGS = ("epochs", "learning_rate", "seed", "patience", "augmentation", "batch_size", "optimizer",
            "weight_decay", "label_smoothing", "precision", "weight_averaging", "plain_last_epochs",
            "retrain_on_all")  # fmt: skip


def _requested(request: dict):
    """A recipe's or a backbone's model, arguments and settings under what the caller gave
    (``request``: train_run's arguments); the backbone is loaded now, so that a bad one fails
    before the data loads. The last of the four comes back as what ``backbone_record`` needs,
    or None without a backbone."""
    model_name, model_args, recipe = request["model_name"], request["model_args"], request["recipe"]
    settings = {name: request[name] for name in SETTINGS}
    transfer = {name: request[name] for name in ("backbone", "fine_tune_epochs", "fine_tune_from")}
    if recipe is not None:
        model_name, model_args, settings = _apply_recipe(recipe, model_name, model_args, settings)
    if transfer["backbone"] is None:
        return model_name, model_args, settings, None
    if settings["precision"] == "bfloat16":  # its phases freeze and thaw the backbone's own layers
        raise ValueError("--precision bfloat16 trains from scratch; leave it out with --backbone")
    settings["precision"] = None  # "auto" (a recipe's) is float32 here
    return apply_backbone(model_name, model_args, settings, recipe=recipe, **transfer)


def _check_request(model_name: str | None, settings: dict, out_dir: Path, overwrite: bool) -> Path:
    """What can be refused before minutes of loading data: the model, the settings (epochs,
    optimizer, precision, augmentation), the folder (``out_dir``, returned)."""
    task = task_of(model_name) if model_name is not None else None  # raises for an unknown model
    given = [name for name in OPTIMIZER_DEFAULTS if settings[name] is not None]
    if task is not None and not task.optimizer_settings and given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(
            f"{flags}: {model_name} trains both networks with Adam (beta_1 0.5) in float32, without a "
            "classifier's settings; leave it out"
        )
    if task is not None and not task.optimizer_settings and settings["retrain_on_all"]:
        raise ValueError(f"--retrain-on-all: {model_name} keeps its last epoch and has no validation split "
                         "to fold in; leave it out")  # fmt: skip
    check_settings(settings)
    if task is not None:  # a text model takes text: its augmentation is refused before the data loads
        check_augmentation_for(task.data_kind, settings["augmentation"])
    check_output_folder(out_dir, "run", overwrite=overwrite)
    return out_dir


def _data_record(batch_size: int, seed: int, image_size) -> dict:
    return {"batch_size": batch_size, "seed": seed, "image_size": list(image_size) if image_size else None}


def _fill_training_defaults(training: dict, task, info) -> dict:
    """The task's settings for this data (size, kind) where the caller left them out."""
    defaults = {
        **OPTIMIZER_DEFAULTS,  # under the task's own (text averages its weights)
        "retrain_on_all": False,
        **task.default_training(info),
        "learning_rate": task.default_learning_rate,
        "augmentation": task.default_augmentation(info),
    }
    if not task.optimizer_settings:  # not recorded where they do not apply
        dropped = (*OPTIMIZER_DEFAULTS, "retrain_on_all")
        training = {key: value for key, value in training.items() if key not in dropped}
    filled = {key: defaults[key] if value is None else value for key, value in training.items()}
    check_augmentation_for(info.kind, filled.get("augmentation"))  # the data's model, when none was named
    check_plain_last_epochs(filled.get("plain_last_epochs"), filled.get("epochs"), filled.get("augmentation"))
    if "precision" in filled:  # config.json records what ran: "auto" becomes float32 or bfloat16
        filled["precision"] = resolve_precision(filled["precision"])
    return filled


def _check_data_options(data_options: dict | None) -> dict:
    data_options = {k: v for k, v in (data_options or {}).items() if v is not None}
    known = TEXT_DATA_OPTIONS + SPLIT_OPTIONS
    unknown = sorted(set(data_options) - set(known))
    if unknown:
        raise ValueError(f"unknown data option(s) {', '.join(unknown)}; use {', '.join(known)}")
    return data_options


def _choose_model(model_name: str | None, data_kind: str) -> tuple[str, str | None]:
    """The model to train and, when train_run chose it, why; refuses a model of the other kind."""
    if model_name is None:
        return default_model_for(data_kind), f"auto ({data_kind} data)"
    takes = task_of(model_name).data_kind
    if takes != data_kind and model_name in (BACKBONE_MODEL, TEXT_BACKBONE_MODEL):
        raise ValueError(
            f"--backbone takes {takes} data, and the data is {data_kind}; leave --backbone out or pass "
            f"{'an image' if data_kind == 'image' else 'a text'} backbone"
        )
    if takes != data_kind:
        raise ValueError(
            f"model '{model_name}' takes {'text' if takes == 'text' else 'images'} but the data is "
            f"{data_kind}; pass --model {default_model_for(data_kind)} (or leave --model out)"
        )
    return model_name, None


def _train_into(
    staging: Path, task, dataset, config: dict, model_args: dict, options: dict, verbose, callbacks
):
    """Builds the model, trains the task's companion runs, writes config.json, then fits."""
    model_name, seed = config["model"], config["training"]["seed"]
    given = {
        # The data's size picks a from-scratch architecture; a backbone brings its own.
        **({} if "backbone" in config else task.default_model_args(dataset.info)),
        **{k: v for k, v in model_args.items() if v is not None},
    }
    resolved = resolve_model_args(model_name, dataset.info, given, seed=seed)
    keras.utils.set_random_seed(seed)  # the initial weights too: same seed, same run
    model = get_builder(model_name)(**{k: v for k, v in resolved.items() if k != "variant_chosen_by"})
    if options.get("before_training"):  # e.g. the pipeline's later stages, refused before any training
        options["before_training"](task, model)
    for companion in task.companion_runs(config, staging, options):
        train_run(**companion)
    config = task.complete_config({**config, "model_args": resolved}, staging, dataset, options)
    write_json(staging / "config.json", _ordered(config))
    metrics = task.fit_into(staging, model, dataset, config, verbose=verbose, callbacks=callbacks)
    # The model's name too, so a reader of metrics.json alone (a non-chief worker, whose run
    # folder is the chief's) knows which task's summary applies.
    metrics = {"model": model_name, **metrics}
    write_json(staging / "metrics.json", metrics)
    return metrics


CONFIG_ORDER = (
    "model", "model_args", "backbone", "data", "training", "bigmodels_version", "model_chosen_by", "recipe",
)  # fmt: skip


def _ordered(config: dict) -> dict:
    """config.json's keys in their usual order (readers do not depend on it; people do)."""
    return {**{key: config[key] for key in CONFIG_ORDER if key in config}, **config}
