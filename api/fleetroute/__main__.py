"""`python -m fleetroute` runs the command line."""

from fleetroute.cli import main

raise SystemExit(main())
