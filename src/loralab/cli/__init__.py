"""The ``loralab`` command line: one small module per subcommand, thin over the library."""
