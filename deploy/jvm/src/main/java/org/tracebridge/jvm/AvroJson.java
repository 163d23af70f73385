package org.tracebridge.jvm;

import com.fasterxml.jackson.core.JsonGenerator;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.HexFormat;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericFixed;
import org.apache.avro.generic.GenericRecord;

/**
 * A decoded Avro value as plain JSON, with every choice spelled out so another program can
 * turn it back into exact values.
 *
 * <p>Why not Avro's own JSON encoding: it writes bytes as ISO-8859-1 strings and wraps union
 * values in {"type": value}, which a comparison would have to undo. Here:
 *
 * <ul>
 *   <li>record: an object with every field, in schema order;
 *   <li>bytes and fixed: lowercase hex;
 *   <li>enum: the symbol;
 *   <li>union: the value of the branch it holds, bare (tracebridge's unions are all
 *       ["null", T], so the branch is never ambiguous);
 *   <li>int, long: JSON integers (exact: Jackson writes a long's digits);
 *   <li>float, double: JSON numbers as Java prints them (round-trip exact), or the strings
 *       "NaN", "Infinity", "-Infinity";
 *   <li>array, map: array, object.
 * </ul>
 *
 * No schema uses a logical type, and GenericData decodes without conversions, so none is
 * applied.
 */
final class AvroJson {
  private static final HexFormat HEX = HexFormat.of();

  private AvroJson() {}

  static void write(JsonGenerator json, Schema schema, Object value) throws IOException {
    switch (schema.getType()) {
      case RECORD -> {
        GenericRecord record = (GenericRecord) value;
        json.writeStartObject();
        for (Schema.Field field : schema.getFields()) {
          json.writeFieldName(field.name());
          write(json, field.schema(), record.get(field.pos()));
        }
        json.writeEndObject();
      }
      case UNION -> {
        int branch = GenericData.get().resolveUnion(schema, value);
        write(json, schema.getTypes().get(branch), value);
      }
      case ARRAY -> {
        json.writeStartArray();
        for (Object item : (Iterable<?>) value) {
          write(json, schema.getElementType(), item);
        }
        json.writeEndArray();
      }
      case MAP -> {
        json.writeStartObject();
        for (Map.Entry<?, ?> entry : ((Map<?, ?>) value).entrySet()) {
          json.writeFieldName(entry.getKey().toString());
          write(json, schema.getValueType(), entry.getValue());
        }
        json.writeEndObject();
      }
      case FIXED -> json.writeString(HEX.formatHex(((GenericFixed) value).bytes()));
      case BYTES -> {
        ByteBuffer buffer = ((ByteBuffer) value).duplicate();
        byte[] bytes = new byte[buffer.remaining()];
        buffer.get(bytes);
        json.writeString(HEX.formatHex(bytes));
      }
      case ENUM, STRING -> json.writeString(value.toString());
      case INT -> json.writeNumber((Integer) value);
      case LONG -> json.writeNumber((Long) value);
      case FLOAT -> writeDouble(json, (Float) value);
      case DOUBLE -> writeDouble(json, (Double) value);
      case BOOLEAN -> json.writeBoolean((Boolean) value);
      case NULL -> json.writeNull();
      default -> throw new IOException("unexpected Avro type " + schema.getType());
    }
  }

  private static void writeDouble(JsonGenerator json, double value) throws IOException {
    if (Double.isFinite(value)) {
      json.writeNumber(value);
    } else {
      json.writeString(Double.toString(value));
    }
  }
}
