"""The learned watermark: networks, attack layer, training, the ``learned`` scheme (see scheme.py)."""
