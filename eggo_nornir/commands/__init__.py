"""CLI commands, one module each, registered by eggo_nornir.cli."""
