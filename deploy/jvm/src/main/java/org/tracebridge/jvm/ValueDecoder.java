package org.tracebridge.jvm;

import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.common.header.Headers;

/** Turns one Kafka value into an Avro record, in one of tracebridge's two framings. */
interface ValueDecoder extends AutoCloseable {

  /**
   * A decoded value, and what identified its writer schema.
   *
   * @param writer the fingerprint's 8 bytes in hex (single-object) or the schema id
   *     (registry), so a reader of the output can tell which schema wrote each record
   */
  record Decoded(GenericRecord record, String writer) {}

  Decoded decode(String topic, Headers headers, byte[] value) throws Exception;

  @Override
  default void close() {}
}
