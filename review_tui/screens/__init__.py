"""The review app's screens, one module each."""
