"""Static int8 forms of exported float graphs, run by onnxruntime where the CPU has VNNI
(:func:`provenance.precision.use_int8`): the CNN classifiers' ``cnn.int8.onnx`` and the learned
watermark's ``learned.*.int8.onnx``.

One recipe for both: QDQ format, weights int8 per output channel in a 7-bit range (so AVX2 kernels
without VNNI cannot saturate), activations uint8 with ranges set on calibration inputs that look
like what ``check`` will see. An int8 graph records the sha256 of the float graph it was made from:
a float graph exported again leaves its old int8 form stale, and :func:`open_session` then ignores it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from .files import file_sha256

SOURCE_DIGEST_KEY = "float_graph_sha256"


def int8_path(float_graph: str | Path) -> Path:
    """Where the int8 form of ``x.onnx`` sits: ``x.int8.onnx`` beside it."""
    return Path(float_graph).with_suffix(".int8.onnx")


def open_session(float_graph: str | Path, int8: bool, threads: int = 1):
    """An onnxruntime session (CPU, ``threads`` intra-op threads) of ``float_graph``, or, with
    ``int8``, of its int8 form where one sits beside it that was made from this very float graph."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    quantised = int8_path(float_graph)
    if int8 and quantised.is_file():
        session = onnxruntime.InferenceSession(str(quantised), options, providers=["CPUExecutionProvider"])
        if is_int8(session) == file_sha256(float_graph):
            return session
    return onnxruntime.InferenceSession(str(float_graph), options, providers=["CPUExecutionProvider"])


def is_int8(session) -> str | None:
    """The float graph's sha256 an int8 session records; None for a float graph."""
    return session.get_modelmeta().custom_metadata_map.get(SOURCE_DIGEST_KEY)


def quantize_graph(float_graph: str | Path, out: str | Path, batches: Iterable[Mapping[str, np.ndarray]],
                   op_types: Sequence[str] | None = None, exclude: Sequence[str] = (),
                   percentile: float | None = None) -> Path:
    """Write the int8 form of ``float_graph`` to ``out``, activation ranges from ``batches`` (input
    name -> array; their extremes, or with ``percentile`` that percentile of each activation, which
    needs batches of equal shapes). ``op_types``: the operators to quantise (default: all that
    onnxruntime can); ``exclude``: node names kept in float32. The metadata of the float graph is
    kept, and the float graph's sha256 added (:func:`open_session`)."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = Path(out)
    prepared, temporary = out.with_name(out.name + ".pre"), out.with_name(out.name + ".tmp")
    feed = iter(batches)

    class Inputs(CalibrationDataReader):
        def get_next(self):
            return next(feed, None)

    method = {"calibrate_method": CalibrationMethod.MinMax} if percentile is None else \
        {"calibrate_method": CalibrationMethod.Percentile, "extra_options": {"CalibPercentile": percentile}}
    try:
        # onnxruntime's symbolic shape inference gives up on some graphs (the CNN's NPR Resize); onnx's own suffices
        quant_pre_process(str(float_graph), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(temporary), Inputs(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        reduce_range=True, nodes_to_exclude=list(exclude),
                        **({"op_types_to_quantize": list(op_types)} if op_types else {}), **method)
        source, model = onnx.load(str(float_graph)), onnx.load(str(temporary))
        del model.metadata_props[:]
        model.metadata_props.extend(source.metadata_props)
        model.metadata_props.add(key=SOURCE_DIGEST_KEY, value=file_sha256(float_graph))
        onnx.save(model, str(temporary))
        temporary.replace(out)
    finally:
        prepared.unlink(missing_ok=True)
        temporary.unlink(missing_ok=True)
    return out
