"""The tf.distribute strategy of a run, by name, and this process's role in a multi-worker cluster."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from keras_tinynet.recipe import TrainingError


def make_strategy(name: str) -> tf.distribute.Strategy:
    """mirrored: all local GPUs, else all logical CPUs; multi_worker: from TF_CONFIG; one_device; tpu."""
    if name == "multi_worker":  # first: collective ops must be configured before TensorFlow starts
        if "TF_CONFIG" not in os.environ:
            raise TrainingError(
                "`strategy`='multi_worker' needs the TF_CONFIG environment variable (cluster and task)."
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.NotFoundError) as error:
        raise TrainingError(f"`strategy`='tpu' found no TPU ({error}).") from None
    return tf.distribute.TPUStrategy(resolver)


def worker_role() -> tuple[bool, str]:
    """(is_chief, task name) under TF_CONFIG; a single process is the chief."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = tf_config.get("task", {})
    task_type, task_id = task.get("type", "worker"), int(task.get("index", 0))
    has_chief = "chief" in tf_config.get("cluster", {})
    chief = task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)
    return chief, f"{task_type}-{task_id}"
