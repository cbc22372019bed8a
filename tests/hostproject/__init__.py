"""A small Django project that adds the app the way a team would: its own users, mounted under /agents/."""
