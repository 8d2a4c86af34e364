"""A test bed of real services on loopback: dockerd, a plain registry, a TLS registry with logins.

Used by the integration tests (as session fixtures) and by laptops (the `testbed` tasks). Every
process it starts is recorded by PID and stopped by that PID, never by name.
"""
