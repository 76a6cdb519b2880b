"""Subcommands of the core: `train` and `review`."""
