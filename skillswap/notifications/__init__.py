"""Notifications: stored per user, published live, delivered by mail and push."""
