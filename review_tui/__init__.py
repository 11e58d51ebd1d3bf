"""The human side of the gate: the Textual review app (`synthgate review`)."""
