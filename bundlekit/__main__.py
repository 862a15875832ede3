import sys

from bundlekit.cli import main

sys.exit(main())
