"""Tests of the Cap'n Proto schemas and the emulated IPC node (marker ``ipc``)."""
