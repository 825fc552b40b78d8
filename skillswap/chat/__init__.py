"""Chat: rooms, messages and the batched message writer."""
