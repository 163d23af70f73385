"""tracebridge: Bitcoin Core tracepoints and IPC events into Kafka, with nothing lost silently."""

__version__ = "0.1.0"
__all__ = ["__version__"]
