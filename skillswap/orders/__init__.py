"""Orders: placing, the state machine, settlement through escrow, deadlines."""
