"""The pure trading engine: the bar loop, the simulated broker and the vectorized path.

Nothing here reads a clock, opens a database or starts a thread: a backtest, a
sweep trial and a paper session drive the same objects.
"""
