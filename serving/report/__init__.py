"""The CRM analysis report (``crmscore report``): ``tables`` computes each section's table from the contract
tables as of a cutoff, ``render`` draws the charts and writes the one self-contained HTML file, ``run`` writes
the files and logs them to MLflow.

May import ``features`` and ``training``; nothing runs at import time.
"""
