"""Inference-time rewrites of a trained functional Keras model that keep its outputs (float32: within 1e-5).

`fold_batch_norm` merges every BatchNormalization that follows a convolution into that convolution's
kernel and bias: in inference mode BN is an affine map per channel, so the merged convolution computes the
same function with two fewer passes over each activation tensor, and the runtime fuses conv + bias + ReLU.

`optimize_for_inference` folds BN, then removes ops whose math another op already does:
- Hard-sigmoid gate (GhostNet's SE): relu6(z + 3) / 6. The +3 goes into the bias of the conv making z, the
  1/6 into the kernel of every linear layer reading x * gate (a linear layer of a scaled input is the layer
  with a scaled kernel, zero padding included), leaving the conv with a fused ReLU6 and no multiply.
- Input preprocessing: Rescaling and Normalization are x * s + o per channel. Before a conv, s goes into the
  kernel rows (zero padding commutes with a scale, not with an offset), leaving one add of o / s.
- ZeroPadding2D + "valid" conv: the conv's "same" padding where TensorFlow pads exactly as the layer does,
  checked per axis from the static input size (at stride 2 "same" pads 0 before, 1 after an even size).
- Dropout is the identity in inference.
Folded weights are computed in float64 and cast to float32 once.

Not done, measured slower: a ghost module's concat(primary, cheap(primary)) is exactly one depthwise conv
of depth multiplier 2 (identity tap + cheap tap, channels interleaved, the permutation absorbed by the next
convs' weights), but XNNPACK and TensorFlow run multiplier-2 depthwise convs as grouped convolutions, 3-4x
slower than the depthwise conv and concatenation it replaces (GhostNet-D TFLite 1.6x, GhostNet-B TF 1.85x).
"""

from keras_tinynet.inference.batch_norm import fold_batch_norm
from keras_tinynet.inference.optimize import optimize_for_inference

__all__ = ["fold_batch_norm", "optimize_for_inference"]
