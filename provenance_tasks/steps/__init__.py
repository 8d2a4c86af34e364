"""The core steps: login, build (with its push), sign, verify. They know nothing of invoke."""
