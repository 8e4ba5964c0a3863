"""The command line (`paper-assistant`, `python -m assistant`): assistant.cli.app holds the commands."""
