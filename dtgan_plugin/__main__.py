"""``python -m dtgan_plugin`` runs the ``dtgan`` command."""

from .cli import main

raise SystemExit(main())
