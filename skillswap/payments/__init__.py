"""Payments: points packages, gateways and the payment state machine."""
