"""Building blocks of run_classification.py: small, pure, separately tested functions."""
