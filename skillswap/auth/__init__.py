"""Authentication primitives: tokens, passwords, the current user, throttles."""
