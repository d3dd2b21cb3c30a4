import sys

from opmerge_core.cli import main

sys.exit(main())
