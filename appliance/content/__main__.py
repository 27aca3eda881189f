import sys

from appliance.content.generate import main

sys.exit(main())
