"""Points: wallets, statements, the signup bonus and the ledger check."""
