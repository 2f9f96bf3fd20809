"""The node's CLI commands (registered in :data:`node.cli.COMMANDS`)."""
