"""Signals to orders: the executor, its journal (resume, idempotency) and the paper-trading logs."""
