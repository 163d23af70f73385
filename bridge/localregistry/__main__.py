"""``python -m bridge.localregistry start|stop|status|fetch``, without the main CLI."""

from bridge.localregistry.cli import registry_group

registry_group(prog_name="python -m bridge.localregistry")
