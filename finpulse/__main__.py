import sys

from finpulse.cli import main

sys.exit(main())
