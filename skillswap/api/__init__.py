"""What REST and WebSocket share below both: problem documents, input rules, pages, JSON."""
