"""Engines that spread ``check`` and ``dataset build`` beyond one process.

    ray_engine.py   Ray Data: an actor pool on a local Ray or a cluster (``pip install 'provenance[ray]'``)
"""
