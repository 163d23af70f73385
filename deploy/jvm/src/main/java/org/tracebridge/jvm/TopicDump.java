package org.tracebridge.jvm;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Prints every record of some topics, from the first offset to the last one present at
 * start, decoded with Apache Avro, as one JSON object a line.
 *
 * <p>Why it exists: tracebridge's topics are a contract for readers that are not this
 * project. This is such a reader, built only from Apache Kafka's consumer, Apache Avro and
 * (for the registry framing) Apicurio's deserializer, so the tests can hold what it decodes
 * against what the project's own Python replay decodes, record by record.
 *
 * <pre>
 * java -cp 'libs/*' org.tracebridge.jvm.TopicDump --bootstrap HOST:PORT \
 *     --framing single-object --schemas avro [--writer-schemas avro/released] TOPIC...
 * java -cp 'libs/*' org.tracebridge.jvm.TopicDump --bootstrap HOST:PORT \
 *     --framing registry --registry-url http://HOST:PORT/apis/registry/v2 TOPIC...
 * </pre>
 *
 * <p>Each line: topic, partition, offset, key (UTF-8), timestamp (ms), schema (the record's
 * full name), writer (the fingerprint's 8 bytes in hex, or the registry's schema id) and
 * value (see {@link AvroJson}); or, for a record that does not decode, error instead of
 * schema, writer and value. Exit 0 when every record was read, 1 otherwise.
 */
public final class TopicDump {
  private static final Duration POLL = Duration.ofMillis(500);
  private static final Duration METADATA_TIMEOUT = Duration.ofSeconds(30);

  private TopicDump() {}

  public static void main(String[] args) throws Exception {
    Options options;
    try {
      options = Options.parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println("TopicDump: " + e.getMessage());
      System.exit(2);
      return;
    }
    ValueDecoder decoder = options.decoder();
    BufferedWriter out =
        new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
    // One object a line: no separator between root values but the newline written after each.
    JsonGenerator json = new JsonFactory().createGenerator(out).setRootValueSeparator(null);
    int failed;
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(consumerConfig(options))) {
      failed = dump(consumer, options, decoder, json);
    } finally {
      decoder.close();
      json.flush();
    }
    System.exit(failed == 0 ? 0 : 1);
  }

  private static Properties consumerConfig(Options options) {
    Properties config = new Properties();
    config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, options.bootstrap);
    config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
    config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
    config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    config.put(ConsumerConfig.CLIENT_ID_CONFIG, "tracebridge-topic-dump");
    return config;
  }

  /** Reads every partition up to its end offset as of the start; returns the failures. */
  private static int dump(
      KafkaConsumer<byte[], byte[]> consumer,
      Options options,
      ValueDecoder decoder,
      JsonGenerator json)
      throws IOException {
    List<TopicPartition> partitions = new ArrayList<>();
    for (String topic : options.topics) {
      List<PartitionInfo> infos = consumer.partitionsFor(topic, METADATA_TIMEOUT);
      if (infos == null || infos.isEmpty()) {
        throw new IllegalStateException("no such topic: " + topic);
      }
      for (PartitionInfo info : infos) {
        partitions.add(new TopicPartition(topic, info.partition()));
      }
    }
    consumer.assign(partitions);
    consumer.seekToBeginning(partitions);
    Map<TopicPartition, Long> end = new HashMap<>(consumer.endOffsets(partitions));
    long deadline = System.nanoTime() + options.timeout.toNanos();
    int failed = 0;
    while (!caughtUp(consumer, end)) {
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("did not reach the end offsets " + end);
      }
      for (ConsumerRecord<byte[], byte[]> record : consumer.poll(POLL)) {
        Long last = end.get(new TopicPartition(record.topic(), record.partition()));
        if (last != null && record.offset() < last) {
          failed += write(json, record, decoder) ? 0 : 1;
        }
      }
    }
    return failed;
  }

  private static boolean caughtUp(
      KafkaConsumer<byte[], byte[]> consumer, Map<TopicPartition, Long> end) {
    end.entrySet().removeIf(e -> consumer.position(e.getKey()) >= e.getValue());
    return end.isEmpty();
  }

  /** Writes one record's line; false if its value did not decode. */
  private static boolean write(
      JsonGenerator json, ConsumerRecord<byte[], byte[]> record, ValueDecoder decoder)
      throws IOException {
    json.writeStartObject();
    json.writeStringField("topic", record.topic());
    json.writeNumberField("partition", record.partition());
    json.writeNumberField("offset", record.offset());
    if (record.key() == null) {
      json.writeNullField("key");
    } else {
      json.writeStringField("key", new String(record.key(), StandardCharsets.UTF_8));
    }
    json.writeNumberField("timestamp", record.timestamp());
    boolean ok = true;
    try {
      ValueDecoder.Decoded decoded =
          decoder.decode(record.topic(), record.headers(), record.value());
      json.writeStringField("schema", decoded.record().getSchema().getFullName());
      json.writeStringField("writer", decoded.writer());
      json.writeFieldName("value");
      AvroJson.write(json, decoded.record().getSchema(), decoded.record());
    } catch (Exception e) {
      json.writeStringField("error", e.toString());
      ok = false;
    }
    json.writeEndObject();
    json.writeRaw('\n');
    return ok;
  }

  /** The command line; see the class comment. */
  private static final class Options {
    String bootstrap;
    String framing;
    Path schemas;
    final List<Path> writerSchemas = new ArrayList<>();
    String registryUrl;
    Duration timeout = Duration.ofSeconds(120);
    final List<String> topics = new ArrayList<>();

    static Options parse(String[] args) {
      Options o = new Options();
      for (int i = 0; i < args.length; i++) {
        String arg = args[i];
        if (!arg.startsWith("--")) {
          o.topics.add(arg);
          continue;
        }
        if (i + 1 == args.length) {
          throw new IllegalArgumentException(arg + " needs a value");
        }
        String value = args[++i];
        switch (arg) {
          case "--bootstrap" -> o.bootstrap = value;
          case "--framing" -> o.framing = value;
          case "--schemas" -> o.schemas = Path.of(value);
          case "--writer-schemas" -> o.writerSchemas.add(Path.of(value));
          case "--registry-url" -> o.registryUrl = value;
          case "--timeout-s" -> o.timeout = Duration.ofSeconds(Long.parseLong(value));
          default -> throw new IllegalArgumentException("unknown option " + arg);
        }
      }
      if (o.bootstrap == null || o.topics.isEmpty()) {
        throw new IllegalArgumentException("needs --bootstrap and at least one topic");
      }
      if ("single-object".equals(o.framing) ? o.schemas == null : o.registryUrl == null) {
        throw new IllegalArgumentException(
            "--framing single-object needs --schemas; --framing registry needs --registry-url");
      }
      if (!"single-object".equals(o.framing) && !"registry".equals(o.framing)) {
        throw new IllegalArgumentException("--framing is single-object or registry");
      }
      return o;
    }

    ValueDecoder decoder() throws IOException {
      return "single-object".equals(framing)
          ? new SingleObjectDecoder(schemas, writerSchemas)
          : new RegistryDecoder(registryUrl);
    }
  }
}
