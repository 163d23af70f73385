package org.tracebridge.jvm;

import io.apicurio.registry.serde.Legacy4ByteIdHandler;
import io.apicurio.registry.serde.SerdeConfig;
import io.apicurio.registry.serde.avro.AvroKafkaDeserializer;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Map;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.common.header.Headers;

/**
 * The Confluent wire format (00, a 4-byte schema id, the Avro body), read with Apicurio's
 * own Kafka deserializer against the registry the bridge registered its schemas in.
 *
 * <p>The bridge registers through the registry's Confluent-compatible API, whose schema ids
 * are Apicurio content ids; the deserializer is told so (the 4-byte id handler, {@code
 * use-id=contentId}) and fetches each writer schema by that id over Apicurio's REST API.
 * Nothing of the schema comes from this project's files.
 */
final class RegistryDecoder implements ValueDecoder {
  private final AvroKafkaDeserializer<GenericRecord> deserializer = new AvroKafkaDeserializer<>();

  /** @param url the registry's v2 REST API, e.g. http://127.0.0.1:18081/apis/registry/v2 */
  RegistryDecoder(String url) {
    deserializer.configure(
        Map.of(
            SerdeConfig.REGISTRY_URL, url,
            SerdeConfig.ID_HANDLER, Legacy4ByteIdHandler.class.getName(),
            SerdeConfig.USE_ID, "contentId"),
        false);
  }

  @Override
  public Decoded decode(String topic, Headers headers, byte[] value) throws IOException {
    if (value == null || value.length < 5 || value[0] != 0) {
      throw new IOException("not the Confluent wire format (no 00 magic byte)");
    }
    GenericRecord record = deserializer.deserialize(topic, headers, value);
    return new Decoded(record, Integer.toString(ByteBuffer.wrap(value, 1, 4).getInt()));
  }

  @Override
  public void close() {
    deserializer.close();
  }
}
