"""Model monitoring on collected data (SPEC R10): drift, data quality and performance
signals over a production window against a reference, thresholds, alerts, results kept
in the workspace, and an HTML report per run. See docs/monitoring.md.

Light to import: pandas, pyarrow and scipy load when a monitor runs.
"""
