"""Event schemas that ship with Platypus, one module per business domain.

Installed as ``platypus_schemas``; registered through the ``platypus.schemas``
entry-point group like any third-party schema package.
"""
