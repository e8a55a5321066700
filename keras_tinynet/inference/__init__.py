"""Inference-time rewrites of a trained functional Keras model that keep its outputs.

`fold_batch_norm` merges every BatchNormalization that follows a convolution into that convolution's
kernel and bias. In inference mode BN is an affine map per channel, so the merged convolution computes
the same function with two fewer passes over each activation tensor (TensorFlow's batch_normalization is
a multiply and an add of the whole tensor), and the runtime can fuse conv + bias + ReLU into one kernel.
The result is for inference and export only: it has no BN statistics left to train.
"""

from keras_tinynet.inference.batch_norm import fold_batch_norm

__all__ = ["fold_batch_norm"]
