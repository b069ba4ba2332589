"""Generated protocol code for gymrpc.v1 (written by `make proto`; do not edit)."""
