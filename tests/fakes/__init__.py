"""Local servers that speak the real protocols of external services, started by the tests."""
