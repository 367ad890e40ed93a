"""``python -m attnguide``: the command line, also under torchrun and accelerate launch."""

import sys

from .cli import main

sys.exit(main())
