# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Allow ``python -m astroclusterclf``."""

import sys

from .cli import main

sys.exit(main())
