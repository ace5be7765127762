"""``python -m dtgan_plugin.cli`` runs the ``dtgan`` command."""

from . import main

raise SystemExit(main())
