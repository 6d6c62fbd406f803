"""``python -m compound.cli``: the same as the ``compound`` command."""

import sys

from compound.cli.main import main

sys.exit(main())
