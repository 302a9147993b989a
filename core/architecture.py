"""Architecture summaries of zoo models: a layer table and counts by layer type, as plain data.

Models are built untrained (`weights="none"`), so no download is ever needed, at a small input size
(the model's minimum, at least 96 px) to keep the build quick. Parameter counts do not depend on
the input size for these convolutional bases.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

SUMMARY_SIZE = 96


def _shape(layer) -> str:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return ""
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def summarize(model_id: str, size: int | None = None) -> dict[str, Any]:
    """`{model, size, depth, params, trainable_params, layers: [{name, type, output_shape, params}], by_type}`.

    `depth` counts the layers holding weights (convolutions, dense and normalisation layers), the usual
    meaning of a network's depth; `layers` lists every layer.
    """
    from core.zoo import ModelRef

    spec = ModelRef.parse(model_id).spec
    size = size or max(spec.min_size, SUMMARY_SIZE)
    model = spec.build(size, weights="none")
    layers = [
        {
            "name": layer.name,
            "type": type(layer).__name__,
            "output_shape": _shape(layer),
            "params": int(layer.count_params()),
        }
        for layer in model.layers
    ]
    by_type = Counter(row["type"] for row in layers)
    weighted = [row for row in layers if row["params"] > 0]
    summary = {
        "model": spec.id,
        "size": size,
        "depth": sum(1 for row in weighted if row["type"] not in ("BatchNormalization", "LayerNormalization")),
        "layer_count": len(layers),
        "params": int(model.count_params()),
        "layers": layers,
        "by_type": [{"type": name, "count": count} for name, count in by_type.most_common()],
    }
    del model
    import keras

    keras.backend.clear_session()
    return summary
