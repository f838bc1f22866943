"""Paper trading: sessions, their drivers and halts, and the process's collaborators.

The runtime (default ledger, engine loop), the kill switch and its cluster, the
registry of live sessions, the pre-flight gate and orphan recovery.
"""
