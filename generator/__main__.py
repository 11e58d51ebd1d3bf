"""`python -m generator` runs the synthgate CLI."""

from generator.cli import main

main()
