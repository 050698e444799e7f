"""Executors: the reference interpreter here; generated numpy and cupy code beside it."""
