"""What a run derives from its data before training: the model, its arguments, the tokenizer."""

from pathlib import Path

from bigmodels.registry import get_builder

TEXT_MODEL_ARGUMENT = "vocabulary_size"  # builders that take token ids have this argument
DEFAULT_MODELS = {"image": "cnn_classifier", "text": "transformer_classifier"}
GENERATIVE_MODELS = ("dcgan",)  # trained by gan_training.fit_gan and scored, not classified
DEFAULT_LEARNING_RATES = {"classifier": 3e-3, "generative": 2e-4}  # DCGAN paper: Adam 2e-4, beta1 0.5


def inspect_arguments(model_name: str):
    """The builder's keyword arguments (name -> inspect.Parameter)."""
    import inspect

    return inspect.signature(get_builder(model_name)).parameters


def check_model_fits_data(model_name: str, accepted, kind: str) -> None:
    takes_text = TEXT_MODEL_ARGUMENT in accepted
    if takes_text != (kind == "text"):
        suggestion = DEFAULT_MODELS[kind]
        raise ValueError(
            f"model '{model_name}' takes {'text' if takes_text else 'images'} but the data is {kind}; "
            f"pass --model {suggestion} (or leave --model out)"
        )


def resolve_model_args(model_name: str, info, model_args: dict, *, seed: int = 0) -> dict:
    """Fills the builder's data-dependent arguments and the automatic choices."""
    from bigmodels.models import choose_cnn_variant

    accepted = inspect_arguments(model_name)
    given = {k: v for k, v in model_args.items() if v is not None}
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise ValueError(
            f"model '{model_name}' has no argument(s) {', '.join(unknown)}; it takes {', '.join(accepted)}"
        )
    resolved = {name: p.default for name, p in accepted.items()}
    resolved.update(given)
    from_data = {"num_classes": info.num_classes, "seed": given.get("seed", seed)}
    if info.kind == "text":
        from_data["sequence_length"] = info.input_shape[0]
        from_data["vocabulary_size"] = info.preprocessing["tokenizer"]["vocabulary_length"]
    else:
        from_data["input_shape"] = from_data["image_shape"] = list(info.input_shape)
    resolved.update({name: value for name, value in from_data.items() if name in accepted})
    if resolved.get("code_from_labels"):
        resolved["code_classes"] = labelled_code_classes(resolved.get("code_classes"), info)
    if "variant" in accepted and given.get("variant", "auto") == "auto":
        resolved["variant"] = choose_cnn_variant(info.input_shape)
        resolved["variant_chosen_by"] = "auto (small grayscale images -> compact, colour photos -> mobile)"
    return resolved


def labelled_code_classes(code_classes, info) -> int:
    """A code learned from the labels has one category per class (the data's, unless given)."""
    if code_classes and code_classes != info.num_classes:
        raise ValueError(
            f"--code-from-labels needs --code-classes equal to the data's {info.num_classes} classes, "
            f"got {code_classes}; leave --code-classes out"
        )
    return info.num_classes


def prepare_text(dataset, staging: Path, settings):
    """Learns the run's WordPiece vocabulary from the training texts and tokenizes every split."""
    from dataclasses import replace

    from bigmodels.data.vocabulary import (
        choose_sequence_length,
        learn_vocabulary,
        save_tokenizer,
        token_counts,
        tokenize_dataset,
    )

    train_texts = dataset.arrays["train"][0]
    vocabulary = learn_vocabulary(train_texts, settings)
    if settings.sequence_length is None:
        counts = token_counts(train_texts, vocabulary, settings)
        settings = replace(settings, sequence_length=choose_sequence_length(counts))
    save_tokenizer(staging, vocabulary, settings)
    return tokenize_dataset(dataset, vocabulary, settings)
