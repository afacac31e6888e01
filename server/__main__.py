"""`python -m server` behaves like the `managed-sessions` command."""

import sys

from server.cli import main

sys.exit(main())
