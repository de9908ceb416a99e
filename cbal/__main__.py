import sys

from cbal.cli import main

sys.exit(main())
