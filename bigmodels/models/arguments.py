"""What a run derives from its data before building a model: the builder's resolved arguments."""

import inspect

from bigmodels.models import choose_cnn_variant
from bigmodels.models.registry import get_builder


def inspect_arguments(model_name: str):
    """The builder's keyword arguments (name -> inspect.Parameter)."""

    return inspect.signature(get_builder(model_name)).parameters


def resolve_model_args(model_name: str, info, model_args: dict, *, seed: int = 0) -> dict:
    """Fills the builder's data-dependent arguments and the automatic choices."""

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
    if info.kind == "text" and "ngram_order" in accepted and "ngram_order" not in given:
        resolved["ngram_order"] = ngram_order_for(info, resolved["ngram_order"])
    if resolved.get("code_from_labels"):
        resolved["code_classes"] = labelled_code_classes(resolved.get("code_classes"), info)
    if "variant" in accepted and given.get("variant", "auto") == "auto":
        resolved["variant"] = choose_cnn_variant(info.input_shape)
        resolved["variant_chosen_by"] = "auto (small grayscale images -> compact, colour photos -> mobile)"
    return resolved


# Character trigrams where most tokens are CJK ideographs (one character each); words stay at
# bigrams. Measured with hashed TF-IDF + logistic regression (benchmarks/results/text_zh.json,
# README): Chinese reviews +1.0 point with trigrams; SST-2 sentences, English and Russian
# fortunes lost 1.5-2.1 points with word trigrams.
IDEOGRAPHIC_SHARE = 0.5


def ngram_order_for(info, default: int) -> int:
    """3 (tokens, bigrams, trigrams) for text mostly in CJK ideographs, else ``default``."""
    if default == 2 and info.preprocessing.get("ideograph_share", 0.0) >= IDEOGRAPHIC_SHARE:
        return 3
    return default


def labelled_code_classes(code_classes, info) -> int:
    """A code learned from the labels has one category per class (the data's, unless given)."""
    if code_classes and code_classes != info.num_classes:
        raise ValueError(
            f"--code-from-labels needs --code-classes equal to the data's {info.num_classes} classes, "
            f"got {code_classes}; leave --code-classes out"
        )
    return info.num_classes
