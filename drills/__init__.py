"""Failover drills on the local sandbox: planned key moves, region loss and return, savepoint
upgrades, under continuous sequenced traffic, with a report (drills/report.py)."""
