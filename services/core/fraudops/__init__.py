"""fraudops core: the schema, configuration, logging and shared building blocks every part uses."""

__version__ = "0.1.0"
