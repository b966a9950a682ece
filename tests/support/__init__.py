"""Test helpers shared by fault tests: a controllable TCP proxy, a source writer, an oracle."""
