"""``python -m panoptes`` is the ``panoptes`` command."""

from .cli import main

main()
