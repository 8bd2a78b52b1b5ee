/*
 * Licensed to the Apache Software Foundation (ASF) under one
 * or more contributor license agreements.  See the NOTICE file
 * distributed with this work for additional information
 * regarding copyright ownership.  The ASF licenses this file
 * to you under the Apache License, Version 2.0 (the
 * "License"); you may not use this file except in compliance
 * with the License.  You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

package org.apache.flink.connector.kinesis.source.reader;

import org.apache.flink.annotation.Internal;
import org.apache.flink.connector.base.source.reader.RecordsWithSplitIds;
import org.apache.flink.connector.base.source.reader.splitreader.SplitReader;
import org.apache.flink.connector.base.source.reader.splitreader.SplitsChange;
import org.apache.flink.connector.kinesis.source.proxy.StreamProxy;
import org.apache.flink.connector.kinesis.source.split.KinesisShardSplit;
import org.apache.flink.connector.kinesis.source.split.KinesisShardSplitState;
import org.apache.flink.connector.kinesis.source.split.StartingPosition;
import org.apache.flink.kinesis.shaded.software.amazon.awssdk.services.kinesis.model.GetRecordsResponse;
import org.apache.flink.kinesis.shaded.software.amazon.awssdk.services.kinesis.model.Record;
import org.apache.flink.kinesis.shaded.software.amazon.awssdk.services.kinesis.model.Shard;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import javax.annotation.Nullable;

import java.io.IOException;
import java.util.ArrayDeque;
import java.util.Collections;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import static java.util.Collections.singleton;

/**
 * The polling split reader of flink-connector-kinesis 4.3.0-1.19, replaced in homeflow's jar
 * (the connector's own class is excluded by the shade plugin) to fix two resharding defects of
 * that release, the newest served on Maven Central here (5.x, which fixes both, is not):
 *
 * <ol>
 *   <li>A shard that closes (split or merge) while records remain was put back in the fetch
 *       queue after its last batch had marked the split finished. The next fetch of the
 *       unregistered split failed the source with "Have records for a split that was not
 *       registered" on every restart: a reshard stopped the job for good. A completed split now
 *       leaves the queue, as in 5.0 ({@code KinesisShardSplitReaderBase}).
 *   <li>Child shards were read alongside their parents, so a key's records written after the
 *       reshard (in a child) could be emitted before its older records still unread in the
 *       parent. A split whose parent ({@code ParentShardId} or {@code AdjacentParentShardId})
 *       is an unfinished split of this reader now waits until that parent is finished (FLINK-32218
 *       does this in 5.0's enumerator, for all readers). Here the wait covers parents read by
 *       this reader: every split at source parallelism 1, and otherwise only where the enumerator
 *       put child and parent on the same subtask.
 *   <li>A shard whose GetRecords came back empty was asked again at once: 4.3.0's reader has no
 *       pause ("we don't have any sleep mechanism"), so an idle job polled its shards about 220
 *       times a second here (50 per shard, ten times Kinesis's limit of 5 reads per second per
 *       shard, a limit shared with every other consumer of the shard) and spent most of a core
 *       doing it. A shard that answered empty is now asked again after {@value
 *       #DEFAULT_IDLE_POLL_MS} ms (the interval of the connector's older FlinkKinesisConsumer,
 *       {@code SHARD_GETRECORDS_INTERVAL_MILLIS}); a shard that returned records is asked again
 *       at once, so a backlog drains at full speed.
 * </ol>
 *
 * <p>{@code -Dhomeflow.kinesis.parentFirst=false} turns (2) off, for the control that shows the
 * reordering; (1) is always on. {@code -Dhomeflow.kinesis.idlePollMs=N} sets (3)'s pause (0: the
 * stock reader's busy polling).
 */
@Internal
public class PollingKinesisShardSplitReader implements SplitReader<Record, KinesisShardSplit> {

    private static final Logger LOG = LoggerFactory.getLogger(PollingKinesisShardSplitReader.class);

    private static final RecordsWithSplitIds<Record> INCOMPLETE_SHARD_EMPTY_RECORDS =
            new KinesisRecordsWithSplitIds(Collections.emptyIterator(), null, false);

    private final StreamProxy kinesis;
    private final boolean parentFirst;
    private final Deque<KinesisShardSplitState> assignedSplits = new ArrayDeque<>();
    /** Split ids assigned to this reader and not finished (queued, or waiting for a parent). */
    private final Set<String> unfinished = new HashSet<>();
    /** Splits waiting for parents, in assignment order, with the parents they still wait for. */
    private final Map<String, KinesisShardSplitState> waiting = new LinkedHashMap<>();
    private final Map<String, Set<String>> waitingFor = new HashMap<>();

    static final long DEFAULT_IDLE_POLL_MS = 200;
    private final long idlePollMs;
    /** Split id -> the earliest {@code System.nanoTime()} to ask it again, after an empty answer (monotonic: the wall clock of a VM can step). */
    private final Map<String, Long> notBefore = new HashMap<>();
    private final Object sleep = new Object();
    private boolean wakeUp; // guarded by sleep

    public PollingKinesisShardSplitReader(StreamProxy kinesisProxy) {
        this.kinesis = kinesisProxy;
        this.parentFirst =
                Boolean.parseBoolean(System.getProperty("homeflow.kinesis.parentFirst", "true"));
        this.idlePollMs =
                Long.parseLong(System.getProperty("homeflow.kinesis.idlePollMs", String.valueOf(DEFAULT_IDLE_POLL_MS)));
    }

    @Override
    public RecordsWithSplitIds<Record> fetch() throws IOException {
        KinesisShardSplitState splitState = nextDueSplit();
        if (splitState == null) {
            pauseUntilASplitIsDue();
            return INCOMPLETE_SHARD_EMPTY_RECORDS;
        }

        GetRecordsResponse getRecordsResponse =
                kinesis.getRecords(
                        splitState.getStreamArn(),
                        splitState.getShardId(),
                        splitState.getNextStartingPosition());
        boolean isComplete = getRecordsResponse.nextShardIterator() == null;
        if (isComplete) {
            finished(splitState.getSplitId());
        } else {
            assignedSplits.add(splitState);
        }

        if (hasNoRecords(getRecordsResponse)) {
            if (!isComplete && idlePollMs > 0) {
                notBefore.put(splitState.getSplitId(), System.nanoTime() + idlePollMs * 1_000_000L);
            }
            return isComplete
                    ? new KinesisRecordsWithSplitIds(
                            Collections.emptyIterator(), splitState.getSplitId(), true)
                    : INCOMPLETE_SHARD_EMPTY_RECORDS;
        }

        splitState.setNextStartingPosition(
                StartingPosition.continueFromSequenceNumber(
                        getRecordsResponse
                                .records()
                                .get(getRecordsResponse.records().size() - 1)
                                .sequenceNumber()));

        return new KinesisRecordsWithSplitIds(
                getRecordsResponse.records().iterator(), splitState.getSplitId(), isComplete);
    }

    /** The first queued split that may be asked now, in round-robin order; null if none is due. */
    @Nullable
    private KinesisShardSplitState nextDueSplit() {
        long now = System.nanoTime();
        for (int i = assignedSplits.size(); i > 0; i--) {
            KinesisShardSplitState s = assignedSplits.poll();
            Long due = notBefore.get(s.getSplitId());
            if (due == null || due - now <= 0) {
                notBefore.remove(s.getSplitId());
                return s;
            }
            assignedSplits.add(s);
        }
        return null;
    }

    /** Sleeps until the earliest queued split is due (or one pause if none is queued), unless woken. */
    private void pauseUntilASplitIsDue() {
        long now = System.nanoTime();
        long left = Math.max(idlePollMs, 1) * 1_000_000L;
        for (KinesisShardSplitState s : assignedSplits) {
            left = Math.min(left, notBefore.getOrDefault(s.getSplitId(), now) - now);
        }
        long until = now + left;
        synchronized (sleep) {
            while (!wakeUp && left > 0) {
                try {
                    TimeUnit.NANOSECONDS.timedWait(sleep, left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt(); // the fetcher is closing
                    break;
                }
                left = until - System.nanoTime();
            }
            wakeUp = false;
        }
    }

    private boolean hasNoRecords(GetRecordsResponse getRecordsResponse) {
        return !getRecordsResponse.hasRecords() || getRecordsResponse.records().isEmpty();
    }

    /** A split is finished: the children that waited only for it join the fetch queue. */
    private void finished(String splitId) {
        unfinished.remove(splitId);
        notBefore.remove(splitId);
        Iterator<Map.Entry<String, KinesisShardSplitState>> it = waiting.entrySet().iterator();
        while (it.hasNext()) {
            Map.Entry<String, KinesisShardSplitState> e = it.next();
            Set<String> parents = waitingFor.get(e.getKey());
            parents.remove(splitId);
            if (parents.isEmpty()) {
                LOG.info("Shard {}: its parents are finished, reading it now.", e.getKey());
                assignedSplits.add(e.getValue());
                waitingFor.remove(e.getKey());
                it.remove();
            }
        }
    }

    @Override
    public void handleSplitsChanges(SplitsChange<KinesisShardSplit> splitsChanges) {
        // All of a change first: a restore hands over a parent and its child in any order.
        for (KinesisShardSplit split : splitsChanges.splits()) {
            unfinished.add(split.splitId());
        }
        Map<String, Shard> shards = null;
        for (KinesisShardSplit split : splitsChanges.splits()) {
            KinesisShardSplitState state = new KinesisShardSplitState(split);
            if (!parentFirst) {
                assignedSplits.add(state);
                continue;
            }
            if (shards == null) {
                shards = shardsOf(split.getStreamArn()); // one source reads one stream
            }
            // A split's id is its shard id (KinesisShardSplit.splitId).
            Set<String> parents = new HashSet<>();
            Shard shard = shards.get(split.getShardId());
            if (shard != null) {
                for (String parent : new String[] {shard.parentShardId(), shard.adjacentParentShardId()}) {
                    if (parent != null && unfinished.contains(parent)) {
                        parents.add(parent);
                    }
                }
            }
            if (parents.isEmpty()) {
                assignedSplits.add(state);
            } else {
                LOG.info("Shard {} waits until its parents {} are read to their end.", split.getShardId(), parents);
                waiting.put(split.splitId(), state);
                waitingFor.put(split.splitId(), parents);
            }
        }
    }

    private Map<String, Shard> shardsOf(String streamArn) {
        Map<String, Shard> out = new HashMap<>();
        List<Shard> all = kinesis.listShards(streamArn, null);
        for (Shard s : all) {
            out.put(s.shardId(), s);
        }
        return out;
    }

    @Override
    public void wakeUp() {
        // New splits, a pause of the reader or shutdown: stop a pause between polls.
        synchronized (sleep) {
            wakeUp = true;
            sleep.notifyAll();
        }
    }

    @Override
    public void close() throws Exception {
        kinesis.close();
    }

    private static class KinesisRecordsWithSplitIds implements RecordsWithSplitIds<Record> {

        private final Iterator<Record> recordsIterator;
        private final String splitId;
        private final boolean isComplete;

        public KinesisRecordsWithSplitIds(
                Iterator<Record> recordsIterator, String splitId, boolean isComplete) {
            this.recordsIterator = recordsIterator;
            this.splitId = splitId;
            this.isComplete = isComplete;
        }

        @Nullable
        @Override
        public String nextSplit() {
            return recordsIterator.hasNext() ? splitId : null;
        }

        @Nullable
        @Override
        public Record nextRecordFromSplit() {
            return recordsIterator.hasNext() ? recordsIterator.next() : null;
        }

        @Override
        public Set<String> finishedSplits() {
            if (splitId == null) {
                return Collections.emptySet();
            }
            if (recordsIterator.hasNext()) {
                return Collections.emptySet();
            }
            return isComplete ? singleton(splitId) : Collections.emptySet();
        }
    }
}
