import sys

from vmlab.front.cli import main

sys.exit(main())
