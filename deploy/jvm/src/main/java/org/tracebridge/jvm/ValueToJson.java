package org.tracebridge.jvm;

import java.nio.charset.StandardCharsets;
import java.util.Map;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.transforms.Transformation;
import org.apache.kafka.common.config.ConfigDef;

/**
 * A Kafka Connect transform that turns a record's value into its JSON text, written by
 * Kafka's own {@link JsonConverter} (without the schema envelope).
 *
 * <p>Why: the FileStream sink writes {@code value.toString()}, which for a Connect {@code
 * Struct} is not JSON and prints bytes as an object address. With this transform last in the
 * chain the sink writes one JSON document per line, as Connect's JSON converter renders the
 * Connect data: bytes (Avro bytes and fixed) as base64, enums as their symbols, null for
 * an empty union. Nulls are kept as nulls rather than replaced by the field's default, so
 * the line says what the record held.
 */
public final class ValueToJson<R extends ConnectRecord<R>> implements Transformation<R> {
  private final JsonConverter converter = new JsonConverter();

  @Override
  public void configure(Map<String, ?> configs) {
    converter.configure(
        Map.of(
            "converter.type", "value",
            "schemas.enable", "false",
            "replace.null.with.default", "false"));
  }

  @Override
  public R apply(R record) {
    byte[] json = converter.fromConnectData(record.topic(), record.valueSchema(), record.value());
    String text = json == null ? null : new String(json, StandardCharsets.UTF_8);
    return record.newRecord(
        record.topic(),
        record.kafkaPartition(),
        record.keySchema(),
        record.key(),
        Schema.OPTIONAL_STRING_SCHEMA,
        text,
        record.timestamp());
  }

  @Override
  public ConfigDef config() {
    return new ConfigDef();
  }

  @Override
  public void close() {
    converter.close();
  }
}
