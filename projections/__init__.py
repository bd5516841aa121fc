"""Read models (DESIGN §5): obligations, accountability of heads, audit history.

Folds of the global event order into versioned tables in the ledger's own database:
resumable from a stored position, rebuildable from zero beside the live copy, queryable as
of any recorded time or position. Start with ``projections.queries.ReadModels`` (queries),
``projections.runner.Runner`` / ``run_worker`` (keeping them up to date) and
``projections.rebuild.rebuild``; docs/projections.md explains the design.
"""
