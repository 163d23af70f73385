package org.tracebridge.jvm;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.SchemaStore;
import org.apache.kafka.common.header.Headers;

/**
 * Avro single-object encoding without a registry, as Avro's own Java API reads it.
 *
 * <p>The writer schema is found by the fingerprint in the value (a {@link SchemaStore}
 * holding every committed schema, current and released), and the record is read into the
 * current committed schema of the same full name: Avro's schema resolution, exactly what a
 * consumer that keeps the {@code avro/} files does when the bridge is newer or older than
 * it. One {@link BinaryMessageDecoder} per record type, because several share a topic and a
 * decoder has one read schema.
 */
final class SingleObjectDecoder implements ValueDecoder {
  private static final HexFormat HEX = HexFormat.of();

  private final SchemaStore.Cache store = new SchemaStore.Cache();
  private final Map<String, Schema> current = new HashMap<>();
  private final Map<String, BinaryMessageDecoder<GenericRecord>> decoders = new HashMap<>();

  /**
   * @param committed the {@code avro/} directory: {@code <subsystem>/<Record>.avsc} are the
   *     current schemas, read into
   * @param writerOnly directories of older schemas (e.g. {@code avro/released}) that records
   *     may have been written with
   */
  SingleObjectDecoder(Path committed, List<Path> writerOnly) throws IOException {
    for (Path file : avscFiles(committed, 2)) {
      Schema schema = new Schema.Parser().parse(file.toFile());
      current.put(schema.getFullName(), schema);
      store.addSchema(schema);
    }
    if (current.isEmpty()) {
      throw new IOException("no <subsystem>/<Record>.avsc under " + committed);
    }
    for (Path dir : writerOnly) {
      for (Path file : avscFiles(dir, Integer.MAX_VALUE)) {
        store.addSchema(new Schema.Parser().parse(file.toFile()));
      }
    }
  }

  private static List<Path> avscFiles(Path dir, int depth) throws IOException {
    try (Stream<Path> files = Files.walk(dir, depth)) {
      List<Path> out = new ArrayList<>();
      files
          .filter(p -> p.toString().endsWith(".avsc"))
          .filter(p -> depth == Integer.MAX_VALUE || dir.relativize(p).getNameCount() == depth)
          .sorted()
          .forEach(out::add);
      return out;
    }
  }

  @Override
  public Decoded decode(String topic, Headers headers, byte[] value) throws IOException {
    if (value == null || value.length < 10 || value[0] != (byte) 0xC3 || value[1] != 0x01) {
      throw new IOException("not Avro single-object encoding (no C3 01 header)");
    }
    long fingerprint = ByteBuffer.wrap(value, 2, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    Schema writer = store.findByFingerprint(fingerprint);
    if (writer == null) {
      throw new IOException("no committed schema has fingerprint " + HEX.formatHex(value, 2, 10));
    }
    Schema reader = current.get(writer.getFullName());
    if (reader == null) {
      throw new IOException(writer.getFullName() + " is no longer a committed schema");
    }
    BinaryMessageDecoder<GenericRecord> decoder =
        decoders.computeIfAbsent(
            reader.getFullName(),
            name -> new BinaryMessageDecoder<>(GenericData.get(), reader, store));
    return new Decoded(decoder.decode(value), HEX.formatHex(value, 2, 10));
  }
}
