"""Local stand-ins for AWS and for Managed Flink: the emulator with its region gate, the global-table
and cross-region-replication replicators, the local Flink runners (minicluster processes, a
standalone cluster). Nothing here runs in AWS."""
