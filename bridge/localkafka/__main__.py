"""``python -m bridge.localkafka start|stop|status|jars``, before the main CLI wires it in."""

from bridge.localkafka.cli import kafka_group

kafka_group(prog_name="python -m bridge.localkafka")
