package dev.homeflow.flink;

import java.util.HashMap;
import java.util.Map;
import java.util.UUID;
import org.apache.iceberg.aws.AwsClientFactories;
import org.apache.iceberg.flink.maintenance.api.TriggerLockFactory;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import software.amazon.awssdk.services.dynamodb.DynamoDbClient;
import software.amazon.awssdk.services.dynamodb.model.AttributeValue;
import software.amazon.awssdk.services.dynamodb.model.ConditionalCheckFailedException;

/**
 * The lock Iceberg's Flink table maintenance takes before a maintenance task runs (so that two
 * tasks never rewrite one table at once, and a restored job knows a task was in flight), kept as an
 * item of a DynamoDB table the job already uses, instead of the JDBC or ZooKeeper store Iceberg
 * ships. Same semantics as Iceberg's JdbcLockFactory: {@code tryLock} is a conditional put that
 * fails when the item exists, {@code unlock} deletes the item only if it still names the instance
 * that was read (a lock taken again in between survives). The client is built from the catalog's
 * properties, the way DynamoDbCatalog builds its own, so endpoint, region and credentials match.
 *
 * <p>On a global table the single-writer rule holds: the items of a home table's lock are written
 * only by that home region's job.
 */
public final class DynamoDbTriggerLockFactory implements TriggerLockFactory {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(DynamoDbTriggerLockFactory.class);

    private final HashMap<String, String> clientProperties;
    private final String tableName;
    private final String keyAttribute;
    private final String lockId;
    private transient DynamoDbClient ddb;

    public DynamoDbTriggerLockFactory(Map<String, String> clientProperties, String tableName, String keyAttribute,
                                      String lockId) {
        this.clientProperties = new HashMap<>(clientProperties);
        this.tableName = tableName;
        this.keyAttribute = keyAttribute;
        this.lockId = lockId;
    }

    @Override
    public void open() {
        if (ddb == null) {
            ddb = AwsClientFactories.from(clientProperties).dynamo();
        }
    }

    @Override
    public Lock createLock() {
        return new ItemLock("maintenance");
    }

    @Override
    public Lock createRecoveryLock() {
        return new ItemLock("recovery");
    }

    @Override
    public void close() {
        if (ddb != null) {
            ddb.close();
            ddb = null;
        }
    }

    /** The lock item's key, e.g. {@code lock#maintenance#homeflow.events_us_east_1}. */
    public String itemKey(String type) {
        return "lock#" + type + "#" + lockId;
    }

    private final class ItemLock implements Lock {
        private final String type;

        private ItemLock(String type) {
            this.type = type;
        }

        private Map<String, AttributeValue> key() {
            return Map.of(keyAttribute, AttributeValue.fromS(itemKey(type)));
        }

        private String instance() {
            Map<String, AttributeValue> item =
                    ddb.getItem(b -> b.tableName(tableName).key(key()).consistentRead(true)).item();
            return item == null || item.isEmpty() || !item.containsKey("instance") ? null : item.get("instance").s();
        }

        @Override
        public boolean tryLock() {
            if (isHeld()) {
                LOG.info("lock {} is already held", itemKey(type));
                return false;
            }
            String mine = UUID.randomUUID().toString();
            Map<String, AttributeValue> item = new HashMap<>(key());
            item.put("instance", AttributeValue.fromS(mine));
            item.put("updated_at", AttributeValue.fromN(Long.toString(System.currentTimeMillis())));
            try {
                ddb.putItem(b -> b.tableName(tableName).item(item)
                        .conditionExpression("attribute_not_exists(#k)")
                        .expressionAttributeNames(Map.of("#k", keyAttribute)));
                LOG.info("took lock {} as {}", itemKey(type), mine);
                return true;
            } catch (ConditionalCheckFailedException e) {
                return false;
            }
        }

        @Override
        public boolean isHeld() {
            return instance() != null;
        }

        @Override
        public void unlock() {
            String held = instance();
            if (held == null) {
                return;
            }
            try {
                ddb.deleteItem(b -> b.tableName(tableName).key(key())
                        .conditionExpression("instance = :i")
                        .expressionAttributeValues(Map.of(":i", AttributeValue.fromS(held))));
                LOG.info("released lock {} ({})", itemKey(type), held);
            } catch (ConditionalCheckFailedException e) {
                LOG.info("lock {} was taken again before it was released; kept", itemKey(type));
            }
        }
    }
}
