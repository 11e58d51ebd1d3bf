"""synthgate's machine side: config, seeds, generation, checks, the review store and export."""

__version__ = "0.1.0"
