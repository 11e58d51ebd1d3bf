"""The review store: SQLModel tables, migrations, and the small APIs the CLI and the review UI use."""
