"""`keras-tinynet convert` in a clone: `python scripts/convert_weights.py --help` (logic: keras_tinynet.cli.convert)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's package

from keras_tinynet.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
