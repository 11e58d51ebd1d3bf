"""The core side of `synthgate serve`: sign-in links and sessions in the store, and whose identity an app process takes (the server itself is review_tui.web)."""
