"""`python -m fastmlp.bench ...` = `fastmlp bench ...` (also the torch.compile worker's entry)."""

import sys

from .run import main

sys.exit(main())
