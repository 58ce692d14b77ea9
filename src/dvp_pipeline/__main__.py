"""``python -m dvp_pipeline`` is the ``dvp`` command."""

import sys

from dvp_pipeline.cli import main

sys.exit(main())
