"""Image classification: raw uint8 pixels in (resizing and rescaling inside the model)."""

from bigmodels.convert.tflite import DEFAULT_IMAGE_MODES, QUANTIZATION_MODES
from bigmodels.tasks.classification import ClassificationTask


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
