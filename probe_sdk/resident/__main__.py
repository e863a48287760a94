"""`python -m probe_sdk.resident`: run a case's sample function without pause (docs/resident.md)."""

import sys

from probe_sdk.resident.runner import main

sys.exit(main())
