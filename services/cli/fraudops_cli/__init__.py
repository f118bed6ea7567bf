"""The `fraudops` command: the single entry point for every verb of the platform."""
