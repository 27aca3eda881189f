import sys

from appliance.console.cli import main

sys.exit(main())
