import sys

from comet.agent.client_cli import main

sys.exit(main())
