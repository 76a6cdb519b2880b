"""One thin module per subcommand of `emergent-alignment`: `add_arguments(parser)` and `run(args) -> int`."""
