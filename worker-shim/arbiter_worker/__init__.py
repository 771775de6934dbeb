"""arbiter_worker: the Python side of an arbiter worker (see docs/worker-channel.md).

Importing this package has no side effects; ``python -m arbiter_worker`` calls ``main()``.
"""

__version__ = "0.1.0"
