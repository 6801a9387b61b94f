import sys

from vmlab.cli import main

sys.exit(main())
