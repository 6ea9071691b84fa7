"""``python -m airvoice.cli``."""

from airvoice.cli import main

main()
