"""What opmerge keeps under ``$OPMERGE_HOME``: the SQLite run store (runstore.py), the one run life
cycle that writes it (runs.py) and the persistent result cache shared by every process (cache.py)."""
