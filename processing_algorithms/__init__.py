"""Territory Planner Processing wrappers: one module per algorithm, plus provider and shared base.

Nothing is imported here on purpose: ``plugin.py`` imports ``provider`` only once the Python
dependencies are known to be installed.
"""
