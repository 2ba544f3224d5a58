import sys

from deeprl.cli import main

sys.exit(main())
