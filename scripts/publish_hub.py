"""`keras-tinynet publish-hub` in a clone: `python scripts/publish_hub.py --help` (keras_tinynet.cli.publish_hub)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's package

from keras_tinynet.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["publish-hub", *sys.argv[1:]]))
