"""batch-runner: a YAML manifest of generation jobs in, verified files from the Wiro API out."""

__version__ = "0.1.0"
