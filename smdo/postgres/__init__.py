"""PostgreSQL: the schema's versioned migrations, the check a hub makes at start, session options."""

#: Set on every session of the hub and the CLI: a process that stalls inside a transaction (a frozen
#: VM, a stopped process) would hold its locks (the journal's chain head, the registry's version
#: row) and stop every node's writes, so the server ends a session silent in a transaction for 10 s.
SESSION_OPTIONS = "-c idle_in_transaction_session_timeout=10000"
