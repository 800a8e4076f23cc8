"""Data: readers, LMDB store, splits, statistics."""
