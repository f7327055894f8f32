"""`python -m keras_er ...` is the `keras-er` command line."""

import sys

from keras_er.app.cli import main

sys.exit(main())
