"""The review app served to a browser (textual-serve): the UI side of `synthgate serve`."""
