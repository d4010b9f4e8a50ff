"""--backbone's settings for train_run: which model a backbone trains, the phases' schedule
chosen by the data's size, a text preset's vocabulary, and config.json's record of it all."""

from bigmodels.data.vocabulary import FixedVocabulary, TokenizerSettings
from bigmodels.models.backbone_types import RUN_KIND
from bigmodels.models.backbones import check_fine_tune_from, load_backbone
from bigmodels.training.transfer import training_phases

BACKBONE_MODEL = "backbone_classifier"
TEXT_BACKBONE_MODEL = "text_backbone_classifier"  # --backbone with a keras-hub text preset
# Per phase: a pretrained backbone needs far fewer epochs than training from scratch.
BACKBONE_TRAINING = {"epochs": 10, "patience": 5, "retrain_on_all": False}
# A few hundred photos on one of our own runs (ants/bees, 196 training photos, on cifar10_tiny's
# 32-pixel features): both phases still improve after 10 epochs, and the features, learned on
# small objects, do better on photos shown at 1.5x their side. Test accuracy: 59.5% and 62.7%
# with BACKBONE_TRAINING at 32 pixels; 73.2-75.2% (3 seeds) with this schedule at 48 pixels
# (73.9% and 75.2% at 56). Retraining on train + validation once validated, then averaging each
# photo with its mirror image, took the int8 file from 74.5% (each of seeds 0-2) to 74.7% and then
# 76.0% (benchmarks/results/transfer_hymenoptera.json). Keras-hub presets keep BACKBONE_TRAINING:
# nothing measured says otherwise.
SMALL_SET_TRANSFER = {
    "epochs": 30,
    "patience": 15,
    "fine_tune_epochs": 40,
    "resolution_factor": 1.5,
    "retrain_on_all": True,
    "flip_average": True,  # bigmodels.models.layers.MirrorPairs
}
# Colour photos on a backbone keep the shifts and flips its schedules were measured with; from
# scratch, a few hundred camera photos get random-resized crops (tasks.image_classification),
# which nothing has measured on a backbone.
BACKBONE_PHOTO_AUGMENTATION = "shift_flip"
SMALL_SET_EXAMPLES = 1000  # training examples, after the validation split is carved


def apply_backbone(
    model_name, model_args, settings: dict, *, backbone: str, fine_tune_epochs, fine_tune_from, recipe
):
    """Transfer learning: ``backbone_classifier`` on ``backbone`` (an image run folder,
    ``saved_models/<name>``, or a keras-hub image preset folder or name), with its training
    defaults under what the caller gave: phase 1 trains a new head on the frozen backbone for
    ``epochs``; phase 2 fine-tunes at a tenth of the learning rate for ``fine_tune_epochs`` (0
    skips it) from the backbone's layer ``fine_tune_from`` on (default: all of it), BatchNorm in
    inference mode. The epochs the caller left out are ``backbone_schedule``'s, once the data
    is loaded.

    Returns:
        (model name, model arguments, settings, what ``backbone_record`` needs).
    """
    if recipe is not None:
        raise ValueError(f"--recipe {recipe} trains its own model from scratch; leave it out with --backbone")
    if fine_tune_epochs is not None and fine_tune_epochs < 0:
        raise ValueError(f"--fine-tune-epochs must be 0 (no fine-tuning) or more, got {fine_tune_epochs}")
    loaded = load_backbone(backbone)
    chosen = TEXT_BACKBONE_MODEL if loaded.data_kind == "text" else BACKBONE_MODEL
    if model_name not in (None, chosen):
        raise ValueError(f"--backbone trains {chosen}, not {model_name}; leave --model out")
    check_fine_tune_from(loaded.features, fine_tune_from)
    transfer = {
        "record": loaded.record,
        "fine_tune_epochs": fine_tune_epochs,
        "fine_tune_from": fine_tune_from,
        "tokenizer": loaded.tokenizer,
    }
    return chosen, {**(model_args or {}), "backbone": backbone}, settings, transfer


def backbone_schedule(settings: dict, model_args: dict, transfer: dict, info):
    """The phases' epochs and patience (and, for a small image set on one of our runs, the
    resolution) the caller left out, now that the data's size is known: ``SMALL_SET_TRANSFER``
    for at most ``SMALL_SET_EXAMPLES`` training images on a run's features, else
    ``BACKBONE_TRAINING``. Returns (settings, model arguments, transfer) filled in (as given
    without a backbone, ``transfer`` None)."""
    if transfer is None:
        return settings, model_args, transfer
    record = transfer["record"]
    small = record["kind"] == RUN_KIND and info.kind == "image" and info.counts["train"] <= SMALL_SET_EXAMPLES
    schedule = SMALL_SET_TRANSFER if small else BACKBONE_TRAINING
    settings = {key: schedule.get(key) if value is None else value for key, value in settings.items()}
    fine_tune = transfer["fine_tune_epochs"]
    fine_tune = schedule.get("fine_tune_epochs", settings["epochs"]) if fine_tune is None else fine_tune
    transfer = {**transfer, "fine_tune_epochs": fine_tune, "schedule": "small set" if small else "standard"}
    if small and model_args.get("resolution") is None:
        side = round(max(record["image_size"]) * SMALL_SET_TRANSFER["resolution_factor"])
        model_args = {**model_args, "resolution": side}
    # Colour photos only: a mirrored digit or glyph is another one (their augmentation never flips).
    if small and info.input_shape[-1] == 3 and model_args.get("flip_average") is None:
        model_args = {**model_args, "flip_average": SMALL_SET_TRANSFER["flip_average"]}
    if info.kind == "image" and info.input_shape[-1] == 3 and settings.get("augmentation") is None:
        settings = {**settings, "augmentation": BACKBONE_PHOTO_AUGMENTATION}
    return settings, model_args, transfer


def preset_vocabulary(transfer: dict | None, tokenizer):
    """A text preset's vocabulary and settings in place of a learned tokenizer's; of the caller's
    settings (a dict of the apps' flags given, or ``TokenizerSettings`` whose fields that differ
    from the defaults count as given) only the sequence length is kept, and any other is refused.
    Anything else (no backbone, an image one) leaves ``tokenizer`` as given."""
    preset = (transfer or {}).get("tokenizer")
    if preset is None:
        return tokenizer
    if isinstance(tokenizer, TokenizerSettings):  # from Python: what differs from the defaults was given
        defaults = TokenizerSettings()
        tokenizer = {k: v for k, v in vars(tokenizer).items() if v != getattr(defaults, k)}
    replaced = sorted(set(tokenizer or {}) - {"sequence_length"})
    if replaced:
        flags = ", ".join("--" + name.replace("_", "-") for name in replaced)
        raise ValueError(f"{flags}: a text --backbone brings its own vocabulary and settings; leave them out")
    length = (tokenizer or {}).get("sequence_length")
    longest = preset["max_sequence_length"] - 2  # the start and end tokens take two places
    if length is not None and not 1 <= length <= longest:
        raise ValueError(f"--sequence-length must be between 1 and {longest} for this preset, got {length}")
    settings = TokenizerSettings(
        vocabulary_size=len(preset["vocabulary"]),
        sequence_length=length,
        **{key: preset[key] for key in ("lowercase", "strip_accents", "split_on_cjk")},
    )
    return FixedVocabulary(preset["vocabulary"], settings, longest)


def backbone_record(transfer: dict, training: dict) -> dict:  # the vocabulary goes to vocabulary.txt
    """config.json's "backbone": where the features come from, and the two training phases."""
    phases = training_phases(
        training["epochs"],
        transfer["fine_tune_epochs"],
        training["learning_rate"],
        transfer["fine_tune_from"],
    )
    return {
        **transfer["record"],
        "fine_tune_from": transfer["fine_tune_from"],
        "schedule": transfer["schedule"],
        "phases": phases,
    }
