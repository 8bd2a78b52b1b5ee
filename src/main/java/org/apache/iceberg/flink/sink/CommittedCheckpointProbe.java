package org.apache.iceberg.flink.sink;

import org.apache.iceberg.SnapshotRef;
import org.apache.iceberg.Table;

/**
 * What a restored Flink committer would read from a table: the newest checkpoint id its job
 * committed, found by Iceberg's own walk (SinkUtil.getMaxCommittedCheckpointId is package
 * private, hence this class's package). Used by `homeflow maintain` and its tests to prove that
 * snapshot expiry leaves that answer unchanged; -1 means "nothing committed", the answer that
 * makes a restored job commit its checkpoint a second time.
 */
public final class CommittedCheckpointProbe {
  private CommittedCheckpointProbe() {}

  public static long maxCommittedCheckpointId(Table table, String flinkJobId, String operatorId) {
    table.refresh();
    return SinkUtil.getMaxCommittedCheckpointId(table, flinkJobId, operatorId, SnapshotRef.MAIN_BRANCH);
  }
}
