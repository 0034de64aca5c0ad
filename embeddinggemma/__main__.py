"""`python -m embeddinggemma COMMAND ...`: the commands of embeddinggemma/cli/."""

import sys

from embeddinggemma.cli import main

sys.exit(main())
