"""Adapters around the real tools: docker and buildx, the registry's HTTP API, the cosign CLI."""
