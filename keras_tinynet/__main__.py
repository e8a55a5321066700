"""`python -m keras_tinynet`: the `keras-tinynet` command line (no subcommand: the model table)."""

import sys

from keras_tinynet.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m keras_tinynet"))
