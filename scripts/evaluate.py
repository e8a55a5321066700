"""`keras-tinynet evaluate` in a clone: `python scripts/evaluate.py --help` (logic: keras_tinynet.cli.evaluate)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's package

from keras_tinynet.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
