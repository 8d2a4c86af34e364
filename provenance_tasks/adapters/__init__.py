"""Adapters around the real tools: docker (through python-on-whales) and the cosign CLI."""
