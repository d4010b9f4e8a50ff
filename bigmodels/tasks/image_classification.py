"""Image classification: raw uint8 pixels in (resizing and rescaling inside the model)."""

import numpy as np

from bigmodels.convert.tflite import DEFAULT_IMAGE_MODES, QUANTIZATION_MODES
from bigmodels.lite.selftest import encode_array
from bigmodels.tasks.base import MIN_SELFTEST_EXAMPLES, SELFTEST_EXAMPLES
from bigmodels.tasks.classification import ClassificationTask

SELFTEST_PIXEL_BYTES = 1 << 20  # a self-test of large photos keeps to about 1 MiB of pixels (8 at least)


class ImageClassification(ClassificationTask):
    name = "image_classification"
    data_kind = "image"
    default_model = "cnn_classifier"
    quantization_modes = QUANTIZATION_MODES
    default_modes = DEFAULT_IMAGE_MODES

    def default_augmentation(self, info) -> str:
        """Shifts suit digits and glyphs (a flipped 2 is not a 2); photos are also flipped."""
        return "shift" if info.input_shape[-1] == 1 else "shift_flip"

    def serving(self, run_dir, dataset, features) -> dict:
        return {"serving_inputs": features, "saved_model_fields": {"input": "raw uint8 pixels"}}

    def selftest_count(self, features: np.ndarray) -> int:
        fitting = SELFTEST_PIXEL_BYTES // max(1, features[0].nbytes)
        return int(np.clip(fitting, MIN_SELFTEST_EXAMPLES, SELFTEST_EXAMPLES))

    def selftest_inputs(self, dataset, indices) -> dict:
        """The raw uint8 pixels, as a device's camera or file would give them."""
        return {"pixels": encode_array(dataset.arrays["test"][0][indices].astype(np.uint8))}

    def input_spec(self, config: dict, artifact: dict) -> dict:
        quantization = artifact.get("input", {}).get("quantization", [0.0, 0])
        return {
            "dtype": "uint8",
            "shape": [None, *config["model_args"]["input_shape"]],
            "value_range": [0, 255],
            "note": "raw pixels; the runtime quantizes them for an int8 file"
            if quantization[0]
            else "raw pixels; resizing and rescaling happen inside the model",
        }


TASK = ImageClassification()
