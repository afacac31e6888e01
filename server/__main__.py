"""`python -m server` behaves like the `managed-sessions` command."""

import sys

from server.fronts.cli.entry import main

sys.exit(main())
