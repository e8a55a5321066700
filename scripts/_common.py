"""What the absl command lines share: quiet TensorFlow logs and clear errors instead of tracebacks."""

import os
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "keras_tinynet")


def run_cleanly(function):
    """Runs `function()`. A ValueError or FileNotFoundError raised by keras_tinynet itself (a bad flag,
    file or dataset) exits 2 with its message alone; anything else keeps its traceback."""
    try:
        return function()
    except (ValueError, FileNotFoundError) as error:
        origin = traceback.extract_tb(error.__traceback__)[-1].filename
        if not os.path.abspath(origin).startswith(_PACKAGE):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
