"""The call graph of a functional model as the rewrites read it: who reads a tensor, who made it."""

from __future__ import annotations

import collections

import keras

from keras_tinynet import _compat


class LayerGraph:
    """The call nodes of a functional model and each tensor's readers; only layers called once are rewritten."""

    def __init__(self, model: keras.Model):
        self.nodes = [node for node in _compat.layer_graph(model) if not node.is_input]
        self.readers: dict[int, list] = collections.defaultdict(list)
        for node in self.nodes:
            for tensor in node.input_tensors:
                self.readers[id(tensor)].append(node)
        self.outputs = {id(tensor) for tensor in model.outputs}
        self.node_of = {id(node.operation): node for node in self.nodes if _compat.call_count(node.operation) == 1}

    def sole_reader(self, tensor):
        """The one node reading `tensor`, called once, where `tensor` is not also a model output."""
        readers = self.readers[id(tensor)]
        if len(readers) != 1 or id(tensor) in self.outputs or id(readers[0].operation) not in self.node_of:
            return None
        return readers[0]

    def sole_producer(self, tensor):
        """The layer that made `tensor`, where it is called once."""
        node = self.node_of.get(id(_compat.producer(tensor)))
        return node.operation if node else None
