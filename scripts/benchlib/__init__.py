"""The parts of ``scripts/bench.py``: machine facts (`machine`), timed runs (`runs`, `peers`, `blog`), the report."""
