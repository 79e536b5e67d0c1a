"""Alembic migrations of the results store, shipped inside the package.

Run by :func:`medlim.core.store.open_store` (upgrade to head); there is no
``alembic.ini``: the configuration is built in code.
"""
