"""`TinyNetsBackbone`: a keras-hub Backbone of any NetworkSpec, laid out by `network.build_graph` (the builders'
graph), so its layers, names and weights are those of `GhostNetB(include_top=False)`."""

from __future__ import annotations

import keras
from keras_hub.models import Backbone

from keras_tinynet.builder import check_arguments, checked_input_shape
from keras_tinynet.keras_hub_models import presets
from keras_tinynet.network import build_graph
from keras_tinynet.spec_resolver import model_name, resolve_activation, resolve_spec


@keras.saving.register_keras_serializable(package="keras_tinynet")
class TinyNetsBackbone(Backbone):
    """The stem, blocks and final conv of a GhostNet or TinyNet; outputs the final feature map.

    Args:
        spec: a NetworkSpec, its dict (what get_config holds) or a preset name such as "ghostnet_100".
        activation: None (the spec's own), "relu", "hard_swish" or "swish".
        image_shape: (height, width, channels) of the input; None for any size (the default).
        drop_connect_rate: stochastic depth, growing linearly to this rate over the blocks.
        dtype: dtype or policy of every layer and of the model.

    Inputs are normalized images (`TinyNetsImageConverter` makes them). `pyramid_outputs` holds the stage
    outputs "P1".."P5" (strides 2..32), as keras-hub's vision backbones record them.
    """

    def __init__(self, spec, activation=None, image_shape=(None, None, 3), drop_connect_rate=0.0, dtype=None, **kwargs):
        spec = resolve_spec(spec=spec)
        activation = resolve_activation(spec, activation)
        check_arguments(
            pooling=None,
            classes=1,
            classifier_activation=None,
            dropout_rate=0.0,
            drop_connect_rate=drop_connect_rate,
            dtype=dtype,
            input_tensor=None,
        )
        image_shape = checked_input_shape(tuple(image_shape), None, spec.default_size, False, False)
        graph = build_graph(
            spec,
            input_shape=image_shape,
            include_top=False,
            include_preprocessing=False,
            activation=activation,
            drop_connect_rate=drop_connect_rate,
            dtype=dtype,
            name=model_name(spec, activation),
        )
        kwargs.setdefault("name", graph.name)
        super().__init__(inputs=graph.input, outputs=graph.output, dtype=dtype, **kwargs)
        self.spec = spec
        self.activation = activation
        self.image_shape = image_shape
        self.drop_connect_rate = drop_connect_rate
        self.pyramid_outputs = graph.pyramid_outputs

    def get_config(self):
        return {
            **super().get_config(),
            "spec": self.spec.to_dict(),
            "activation": self.activation,
            "image_shape": list(self.image_shape),
            "drop_connect_rate": self.drop_connect_rate,
        }

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """A preset name (`preset_names()`: the verified registry), a preset directory or a kaggle:// / hf://
        handle (keras-hub loads those)."""
        return presets.from_preset(cls, super().from_preset, preset, load_weights, kwargs)
