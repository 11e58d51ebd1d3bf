"""`synthgate serve`: the review app in a browser, behind one-time sign-in links and per-reviewer sessions."""
