"""Pure domain: no I/O, no imports of SQLAlchemy, FastAPI, dramatiq, lxml or saxonche."""
