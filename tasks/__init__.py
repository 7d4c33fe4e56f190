"""Composable Nornir tasks: each is `fn(task, **params) -> Result` and works in any Nornir script."""
