"""What the absl command lines share: quiet TensorFlow logs and clear errors instead of tracebacks."""

import os
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OURS = (os.path.join(_ROOT, "keras_tinynet") + os.sep, os.path.join(_ROOT, "scripts") + os.sep)


def run_cleanly(function):
    """Runs `function()`. A ValueError or FileNotFoundError raised by keras_tinynet or a script (a bad
    flag, file or dataset) exits 2 with its message alone; anything else keeps its traceback."""
    try:
        return function()
    except (ValueError, FileNotFoundError) as error:
        origin = traceback.extract_tb(error.__traceback__)[-1].filename
        if not os.path.abspath(origin).startswith(_OURS):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
