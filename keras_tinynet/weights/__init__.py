"""Pretrained weights: loading by layer name (`loading`), the verified download registry (`registry`), the
timm state-dict mapping (`timm_mapping`) and the conversion of published checkpoints (`conversion`)."""
