"""``python -m batch_runner`` runs the CLI."""

from .cli import main

raise SystemExit(main())
