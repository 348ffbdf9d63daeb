"""PostgreSQL: the schema's versioned migrations and the check a hub makes at start."""
