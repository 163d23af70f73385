"""Tests of the emulated Bitcoin Core node and the ELF note parser."""
