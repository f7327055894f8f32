"""The framework side of `keras_er.deploy`: one writer and one runtime per format.

This is the only module of `keras_er.deploy` that imports a framework
(tensorflow, tf2onnx, torch, onnxruntime, ai_edge_litert), each inside the
function that needs it, with a clear error when it is missing. A writer takes a
plain Keras model (masks already folded in) and writes `path`; a runner loads a
written file in its format's own runtime and returns its outputs on a batch.

Routes (the backend is the running Keras backend):

- LiteRT, TensorFlow: the model's SavedModel (`model.export`) goes through
  `tf.lite.TFLiteConverter` with `tf.lite.Optimize.EXPERIMENTAL_SPARSITY`,
  which stores each sparse enough constant tensor in TFLite's sparse format
  (a Densify op expands it when the interpreter prepares the graph). Builtin
  ops only, so `ai_edge_litert.interpreter.Interpreter` runs it without the
  Flex delegate. (`ai-edge-litert` is the runtime; its wheel has no public
  Python converter, so conversion stays TensorFlow's.)
- ONNX, TensorFlow: the model's concrete function is frozen
  (`convert_variables_to_constants_v2`: variables and captured constants
  become graph constants) and converted with `tf2onnx.convert.from_graph_def`,
  naming only the real inputs. `tf2onnx.convert.from_function` (Keras'
  route) also lists the placeholders TensorFlow makes for captured eager
  tensors as model inputs, such as a `Normalization` layer's fixed
  mean and variance, so onnxruntime asks for them.
- ONNX, torch and JAX: Keras' own `model.export(format="onnx")` (torch's
  TorchScript exporter with a dynamic batch axis; jax2onnx on JAX).
- ONNX, every backend: initializers that are mostly zeros then move to the
  graph's `sparse_initializer` list (values and int64 indices), which
  onnxruntime expands when it loads the file.
- SavedModel, TensorFlow and JAX: Keras' `model.export(format="tf_saved_model")`
  (jax2tf on JAX).
"""

import os
import tempfile

import keras
import numpy as np


def missing_package(package, install, purpose):
    return ImportError(f"{purpose} needs the `{package}` package, which is not installed: pip install {install}.")


def _import(module, install, purpose):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing_package(module, install, purpose) from None


# Writers ------------------------------------------------------------------------------------------------------


def write_saved_model(model, path):
    _import("tensorflow", "tensorflow", "The tf_saved_model format")
    model.export(str(path), format="tf_saved_model", verbose=False)


def write_litert(model, path, sparse=True):
    tf = _import("tensorflow", "tensorflow", "LiteRT conversion (tf.lite.TFLiteConverter)")
    with tempfile.TemporaryDirectory() as folder:
        saved = os.path.join(folder, "saved_model")
        model.export(saved, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if sparse:
            converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        flatbuffer = converter.convert()
    with open(path, "wb") as handle:
        handle.write(flatbuffer)


def write_onnx(model, path, input_name, sparse=True):
    onnx = _import("onnx", "onnx", "ONNX export")
    if keras.backend.backend() == "tensorflow":
        _write_onnx_tensorflow(model, path, input_name)
    else:
        if keras.backend.backend() == "jax":
            _import("jax2onnx", "jax2onnx", "ONNX export on the JAX backend (Keras' route)")
        model.export(str(path), format="onnx", verbose=False)
    if sparse:
        proto = onnx.load(str(path))
        sparse_initializers(proto)
        onnx.save(proto, str(path))


def sparse_initializers(proto):
    """Move each float32 initializer that its nonzeros store in fewer bytes into `sparse_initializer`.

    ONNX's sparse encoding (`SparseTensorProto`): the nonzero values and their
    int64 flat indices, 12 bytes per nonzero, so it pays below a third of the
    weights; onnxruntime expands it to a dense tensor when it loads the file.
    Returns how many initializers moved.
    """
    from onnx import helper
    from onnx import numpy_helper

    graph = proto.graph
    dense, sparse = [], []
    for initializer in graph.initializer:
        array = numpy_helper.to_array(initializer)
        nonzero = np.flatnonzero(array) if array.dtype == np.float32 else None
        if nonzero is None or 12 * len(nonzero) >= 4 * array.size:
            dense.append(initializer)
            continue
        values = numpy_helper.from_array(array.reshape(-1)[nonzero], initializer.name)
        indices = numpy_helper.from_array(nonzero.astype(np.int64))
        sparse.append(helper.make_sparse_tensor(values, indices, list(array.shape)))
    del graph.initializer[:]
    graph.initializer.extend(dense)
    graph.sparse_initializer.extend(sparse)
    return len(sparse)


def _write_onnx_tensorflow(model, path, input_name):
    tf = _import("tensorflow", "tensorflow", "ONNX export on the TensorFlow backend")
    tf2onnx = _import("tf2onnx", "tf2onnx", "ONNX export on the TensorFlow backend")
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from tensorflow.python.util import deprecation

    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), model.inputs[0].dtype, name=input_name)
    function = tf.function(lambda pixels: model(pixels, training=False))
    with deprecation.silence():  # tf2onnx calls TF1-era graph utilities, each with a deprecation notice
        frozen = convert_variables_to_constants_v2(function.get_concrete_function(spec))
        tf2onnx.convert.from_graph_def(
            frozen.graph.as_graph_def(),
            input_names=[tensor.name for tensor in frozen.inputs],
            output_names=[tensor.name for tensor in frozen.outputs],
            output_path=str(path),
        )


# Runtimes -----------------------------------------------------------------------------------------------------


def run_saved_model(path, x):
    tf = _import("tensorflow", "tensorflow", "Reloading a SavedModel")
    loaded = tf.saved_model.load(str(path))  # held while it runs: its variables live as long as it does
    outputs = loaded.serve(tf.constant(x))
    return [np.asarray(output) for output in _flat(outputs)]


def run_litert(path, x):
    interpreter_module = _import("ai_edge_litert.interpreter", "ai-edge-litert", "Running a LiteRT file")
    interpreter = interpreter_module.Interpreter(model_path=str(path))
    (signature,) = interpreter.get_signature_list()  # one endpoint: the model's call
    runner = interpreter.get_signature_runner(signature)
    (name,) = runner.get_input_details()
    outputs = runner(**{name: x})
    return [np.asarray(outputs[key]) for key in sorted(outputs)]


def run_onnx(path, x):
    onnxruntime = _import("onnxruntime", "onnxruntime", "Running an ONNX file")
    runtime = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (single,) = runtime.get_inputs()
    return [np.asarray(output) for output in runtime.run(None, {single.name: x})]


def _flat(outputs):
    if isinstance(outputs, dict):
        return [outputs[key] for key in sorted(outputs)]
    if isinstance(outputs, (list, tuple)):
        return list(outputs)
    return [outputs]


WRITERS = {"litert": write_litert, "onnx": write_onnx, "tf_saved_model": write_saved_model}
RUNTIMES = {"litert": run_litert, "onnx": run_onnx, "tf_saved_model": run_saved_model}
