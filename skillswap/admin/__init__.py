"""Running the marketplace: what administrators do (moderation, adjustments), the audit trail
every such action writes in its own transaction, and the statistics they read."""
