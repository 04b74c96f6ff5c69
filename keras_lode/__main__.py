import sys

from keras_lode.cli import main

sys.exit(main())
