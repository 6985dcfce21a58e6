"""Recording: what turns the training's output and lifecycle into rows of the store.

The raw logs are the write-ahead log of metrics: the store's `coverage` file beside them says how
far each was parsed, and `recover` parses whatever was not (a recorder killed, a catch-up cut
short, a full disk) in the next command that writes.
"""
