"""Which Keras backend writes which deployment format (keras-free: the CLI reads it before keras loads)."""

import importlib.util

FORMATS = ("litert", "onnx", "tf_saved_model")
SUFFIXES = {"litert": ".tflite", "onnx": ".onnx", "tf_saved_model": ""}
RUNTIME_NAMES = {
    "litert": "ai_edge_litert Interpreter",
    "onnx": "onnxruntime",
    "tf_saved_model": "tf.saved_model.load",
}

# (format, backend) -> None when the pair works, else why not and what to do.
SUPPORT = {
    ("litert", "tensorflow"): None,
    ("litert", "torch"): (
        "LiteRT export converts a TensorFlow graph with tf.lite.TFLiteConverter (its sparse encoding); "
        "the torch backend has no TensorFlow graph. Run with KERAS_BACKEND=tensorflow "
        "(the model's .keras file loads there)."
    ),
    ("litert", "jax"): (
        "LiteRT export converts a TensorFlow graph with tf.lite.TFLiteConverter (its sparse encoding); "
        "on JAX the graph would be a jax2tf XLA call the converter does not take. Run with "
        "KERAS_BACKEND=tensorflow (the model's .keras file loads there)."
    ),
    ("onnx", "tensorflow"): None,
    ("onnx", "torch"): None,
    ("onnx", "jax"): None,  # Keras' jax2onnx route: `refusal` names the alternatives when it is missing
    ("tf_saved_model", "tensorflow"): None,
    ("tf_saved_model", "torch"): (
        "Keras cannot write a SavedModel from the torch backend (its torch route fails on a dynamic batch "
        "size). Run with KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax."
    ),
    ("tf_saved_model", "jax"): None,
}


def refusal(format, backend):
    """Why `backend` cannot write `format` here and what to do, or None when it can."""
    if (format, backend) not in SUPPORT:
        return f"keras_er exports from the {', '.join(sorted({b for _, b in SUPPORT}))} backends only."
    if (format, backend) == ("onnx", "jax") and importlib.util.find_spec("jax2onnx") is None:
        return (
            "ONNX export on the JAX backend goes through Keras' jax2onnx route, and the `jax2onnx` package is "
            "not installed (pip install jax2onnx; it pulls in flax and orbax). Or export with "
            "KERAS_BACKEND=torch or KERAS_BACKEND=tensorflow."
        )
    return SUPPORT[(format, backend)]


def support_table():
    """A markdown table of which backend writes which format (the README's)."""
    backends = ("tensorflow", "torch", "jax")
    lines = ["| format | " + " | ".join(backends) + " |", "| --- |" + " --- |" * len(backends)]
    for format in FORMATS:
        cells = [_cell(format, b) for b in backends]
        lines.append(f"| `{format}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(format, backend):
    if SUPPORT[(format, backend)] is not None:
        return "refused"
    return "with `jax2onnx` installed (not a keras_er dependency)" if (format, backend) == ("onnx", "jax") else "yes"
