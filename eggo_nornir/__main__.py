"""`python -m eggo_nornir` entry point."""

from eggo_nornir.cli import main

raise SystemExit(main())
