"""`python -m edge_recorder` is the same as `edge-recorder`."""

import sys

from edge_recorder.cli import main

sys.exit(main())
