"""Exports of replayed events into other tools' formats."""
