"""`keras_er.export`: a (sparse) Keras model -> a deployment file, verified by its format's own runtime.

Formats (Keras' names): `"litert"` (a `.tflite` flatbuffer, sparse weights in
TFLite's sparse encoding), `"onnx"` (a `.onnx` file, sparse weights as ONNX
sparse initializers) and `"tf_saved_model"` (a SavedModel folder; variables
are stored densely, zeros included). Which Keras backend can write which format is in
`SUPPORT`; an unsupported pair is refused with the reason and what to do.

The framework-specific code lives in `keras_er.deploy.adapters`; this module
is backend-neutral.

Examples:
    >>> import tempfile, pathlib
    >>> inputs = keras.Input((8,), name="features")
    >>> model = keras_er.sparsify(keras.Model(inputs, keras.layers.Dense(4)(inputs)), density=0.5)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.onnx"
    >>> if keras.backend.backend() != "jax":
    ...     report = keras_er.export(model, path, format="onnx")
    ...     assert path.is_file() and report["max_abs_diff"] < 1e-4
"""

import os
import shutil
from pathlib import Path

import keras
import numpy as np

from keras_er.deploy.support import FORMATS
from keras_er.deploy.support import RUNTIME_NAMES
from keras_er.deploy.support import SUFFIXES
from keras_er.deploy.support import refusal
from keras_er.files import remove_stale_scratch
from keras_er.files import scratch_path
from keras_er.masks.model import masked_layers


class ExportVerificationError(RuntimeError):
    """The written file's runtime did not reproduce the Keras model's outputs; nothing was kept."""


def export(model, filepath, format=None, *, overwrite=False, sample=None, atol=1e-4, sparse=True, verbose=False):
    """Write `model` as a `format` file at `filepath`, verified by that format's runtime.

    A model with keras_er masked layers is stripped first (`keras_er.strip`:
    plain Keras layers, masks folded into the weights); a model without any is
    exported as it is (a dense twin). The file is written under a scratch name
    beside `filepath`, loaded in its own runtime (LiteRT:
    `ai_edge_litert.interpreter.Interpreter`; ONNX: `onnxruntime`; SavedModel:
    `tf.saved_model.load`), and its outputs on `sample` are compared with the
    Keras model's; only a file within `atol` is moved to `filepath`. A
    mismatch raises `ExportVerificationError` and leaves no file.

    A zoo model's raw-pixel front (a `Normalization` layer with fixed mean and
    variance) stays inside the file in every format.

    Args:
        model: a built Keras model with one input and one output.
        filepath: `.tflite` for LiteRT, `.onnx` for ONNX, a folder for SavedModel.
        format: `"litert"`, `"onnx"` or `"tf_saved_model"` (Keras' names); None infers
            it from the suffix (`.tflite`, `.onnx`).
        overwrite: replace an existing `filepath` (refused otherwise, before anything is written).
        sample: the batch the runtime must reproduce (default: 4 seeded inputs of the model's
            input shape; uniform 0-255 for a model with a `Normalization` front, else N(0, 1)).
        atol: the largest absolute difference allowed between runtime and Keras outputs.
        sparse: LiteRT and ONNX: store sparse weights in the format's sparse encoding (False: densely,
            zeros included). The runtimes expand them when they load the file: smaller files, not
            faster inference.
        verbose: print what was written.

    Returns:
        A dict: `path`, `format`, `backend`, `bytes`, `max_abs_diff`, `runtime`.
    """
    format = _checked_format(format, filepath)
    filepath = Path(filepath)
    _check_path(filepath, format, overwrite)
    _check_model(model)
    backend = keras.backend.backend()
    reason = refusal(format, backend)
    if reason:
        raise ValueError(f"Cannot export format={format!r} on the {backend} backend: {reason}")
    if not isinstance(atol, (int, float)) or not np.isfinite(atol) or atol < 0:
        raise ValueError(f"`atol` must be a finite number >= 0; got {atol!r}.")
    x = _sample(model, sample)
    expected = _outputs(model(x, training=False))
    plain = _plain(model)
    plain(x[:1], training=False)  # a clone has never been called; Keras' exporters need it to have been

    from keras_er.deploy import adapters

    filepath.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(filepath)
    scratch = scratch_path(filepath)
    try:
        if format == "litert":
            adapters.write_litert(plain, scratch, sparse=sparse)
        elif format == "onnx":
            adapters.write_onnx(plain, scratch, input_name=_input_name(model), sparse=sparse)
        else:
            adapters.write_saved_model(plain, scratch)
        actual = adapters.RUNTIMES[format](scratch, x)
        difference = _difference(expected, actual, format)
        if not difference <= atol:
            raise ExportVerificationError(
                f"The {format} file's runtime ({RUNTIME_NAMES[format]}) does not reproduce the Keras model: "
                f"max |difference| {difference:.3g} > atol {atol:g}. No file was written."
            )
        size = _size(scratch)
        _move_into_place(scratch, filepath)
    finally:
        _remove(scratch)
    if verbose:
        print(f"wrote {filepath} ({format}, {size / 1024:.0f} KiB; max |difference| {difference:.2g})")
    return {
        "path": str(filepath),
        "format": format,
        "backend": backend,
        "bytes": size,
        "max_abs_diff": difference,
        "runtime": RUNTIME_NAMES[format],
    }


def _checked_format(format, filepath):
    if format is None:
        suffix = Path(filepath).suffix
        inferred = [f for f, s in SUFFIXES.items() if s and s == suffix]
        if not inferred:
            raise ValueError(
                f"Give `format`, one of {', '.join(map(repr, FORMATS))}: it cannot be inferred from {str(filepath)!r}."
            )
        return inferred[0]
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {', '.join(map(repr, FORMATS))}; got {format!r}.")
    return format


def _check_path(filepath, format, overwrite):
    suffix = SUFFIXES[format]
    if suffix and filepath.suffix != suffix:
        raise ValueError(f"format={format!r} writes a {suffix} file; `filepath` {str(filepath)!r} does not end in it.")
    if format == "tf_saved_model" and filepath.suffix in (".tflite", ".onnx", ".keras", ".h5"):
        raise ValueError(f"format='tf_saved_model' writes a folder; {str(filepath)!r} names a {filepath.suffix} file.")
    if (filepath.exists() or filepath.is_symlink()) and not overwrite:
        raise FileExistsError(f"{filepath} exists; pass overwrite=True to replace it.")
    if filepath.is_dir() != (format == "tf_saved_model") and filepath.exists():
        kind = "folder" if filepath.is_dir() else "file"
        raise ValueError(f"{filepath} is a {kind}; format={format!r} cannot replace it.")


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model; got {type(model).__name__}.")
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built; call it on a batch or build it first.")
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1 or len(_outputs_of(model)) != 1:
        raise ValueError(
            f"keras_er.export takes a Functional or Sequential model with one input and one output; "
            f"'{model.name}' has {len(inputs or [])} input(s) and {len(_outputs_of(model))} output(s)."
        )


def _outputs_of(model):
    try:
        return list(model.outputs or [])
    except (AttributeError, ValueError):
        return []


def _input_name(model):
    name = model.inputs[0].name
    return name.split(":")[0] if name else "inputs"


def _sample(model, sample):
    shape = tuple(model.inputs[0].shape[1:])
    if sample is None:
        rng = np.random.default_rng(0)
        if any(isinstance(layer, keras.layers.Normalization) for layer in model.layers[:3]):
            return rng.uniform(0, 255, (4, *shape)).astype("float32")
        return rng.normal(size=(4, *shape)).astype("float32")
    sample = np.asarray(keras.ops.convert_to_numpy(sample), dtype="float32")
    if sample.shape[1:] != shape or len(sample) == 0:
        raise ValueError(
            f"`sample` must be a non-empty batch of shape (n, {', '.join(map(str, shape))}); got {sample.shape}."
        )
    if not np.isfinite(sample).all():
        raise ValueError("`sample` holds non-finite values (NaN or inf).")
    return sample


def _plain(model):
    if not masked_layers(model):
        return model
    from keras_er.stripping import strip

    return strip(model)


def _outputs(outputs):
    if isinstance(outputs, dict):
        outputs = [outputs[key] for key in sorted(outputs)]
    elif not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return [np.asarray(keras.ops.convert_to_numpy(output)) for output in outputs]


def _difference(expected, actual, format):
    if len(expected) != len(actual) or any(e.shape != a.shape for e, a in zip(expected, actual)):
        raise ExportVerificationError(
            f"The {format} file's runtime returns outputs of shapes {[a.shape for a in actual]}; the Keras model "
            f"{[e.shape for e in expected]}. No file was written."
        )
    differences = [
        np.max(np.abs(e.astype("float64") - a.astype("float64")), initial=0.0) for e, a in zip(expected, actual)
    ]
    return float(max(differences))  # NaN compares false against atol: a NaN output is a mismatch


def _size(path):
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def _move_into_place(scratch, filepath):
    if scratch.is_dir() and filepath.is_dir():  # a folder cannot be renamed over another: set the old one aside
        old = scratch_path(filepath)
        os.replace(filepath, old)
        os.replace(scratch, filepath)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(scratch, filepath)


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
