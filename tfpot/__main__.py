import sys

from tfpot.cli import main

sys.exit(main())
