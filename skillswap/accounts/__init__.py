"""User accounts: sign-up, sessions, profile, emailed codes, Google sign-in, admins."""
