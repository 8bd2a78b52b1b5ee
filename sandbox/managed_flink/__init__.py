"""A local stand-in for Amazon Managed Service for Apache Flink's control plane (the
`kinesisanalyticsv2` API), served by the sandbox's emulator endpoint next to moto.

moto's own kinesisanalyticsv2 creates, describes, lists and tags applications, and runs nothing.
This stand-in answers every operation homeflow's deploy uses, with the service's state machine
(READY -> STARTING -> RUNNING -> UPDATING / STOPPING -> READY), version ids checked on every
change, and snapshots, and it runs the application the way the service does: it fetches the zip
from S3, unpacks it, reads the run options (`python`, `jarfile`, `pyFiles`), hands the property
groups to the job and runs it on a local standalone Flink cluster of the region; snapshots are
savepoints.

- model.py:   the applications' state and the API's rules (pure; unit-tested)
- runner.py:  the region's Flink cluster, the unpacked code, submit / savepoint / cancel
- service.py: the WSGI layer in the emulator's process, and the worker that makes transitions
"""
