"""Build the native hot-path module; all other metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "bridge.codec._native",
            [
                "bridge/codec/_native.c",
                "bridge/codec/encode.c",
                "bridge/codec/ring.c",
                "bridge/codec/capnp.c",
                "bridge/codec/redact.c",
            ],
            depends=["bridge/codec/native.h"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror"],
        ),
        Extension(
            # librdkafka is opened at run time (the one confluent-kafka loaded); only
            # its header is needed here (Debian's librdkafka-dev).
            "bridge.sinks.kafka._producer",
            ["bridge/sinks/kafka/_producer.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror"],
        ),
        Extension(
            "bridge.codec._avro_decode",
            ["bridge/codec/_avro_decode.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror"],
        ),
    ]
)
