"""``python -m worldmodels.cli ...`` runs the ``worldmodels`` command."""

import sys

from worldmodels.cli.main import main

sys.exit(main())
