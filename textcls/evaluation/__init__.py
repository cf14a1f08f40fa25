"""Metrics, predictions, the report and its pictures, submission files, model card, results."""
