"""What the absl command lines share: quiet TensorFlow logs and clear errors instead of tracebacks."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_cleanly(function):
    """Runs `function()`; a user error (ValueError, FileNotFoundError) exits 2 with its message."""
    try:
        return function()
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
