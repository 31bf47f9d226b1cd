"""CLI subcommands, one module each (the top layer: may import anything below)."""
