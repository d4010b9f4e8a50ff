"""The latent-code rule of class-conditioned generators, in numpy.

Training (``bigmodels.training.gan``) scores a generator with it and the device runtime
(``Bundle.generate(label=...)``) draws a class with it, so both follow the one rule.
"""

import numpy as np


def code_categories(latents: np.ndarray, code_entries: int) -> np.ndarray:
    """The category each latent vector's code asks for: the index of the largest of its first
    ``code_entries`` values (numpy's form of ``CodeEmbedding.category``, the generator's own)."""
    return np.asarray(latents)[:, :code_entries].argmax(axis=1)


def latents_for_class(latents: np.ndarray, class_index: int, code_entries: int) -> np.ndarray:
    """Gaussian latent vectors whose code asks for ``class_index``: each row's largest code entry
    swaps places with entry ``class_index``. By the symmetry of independent Gaussians this is
    exactly the latent distribution given that class, so the samples are those the generator
    draws for that class anyway."""
    latents = np.array(latents, np.float32)
    rows = np.arange(len(latents))
    largest = code_categories(latents, code_entries)
    latents[rows, class_index], latents[rows, largest] = latents[rows, largest], latents[rows, class_index]
    return latents
