"""Paper trading: sessions, their drivers and halts, and the process's collaborators (runtime, kill switch, registry, gate)."""
