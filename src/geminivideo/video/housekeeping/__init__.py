"""Housekeeping: disk cleanup, the in-use registry and per-host resource snapshots."""
