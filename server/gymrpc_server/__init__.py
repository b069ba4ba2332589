"""gymrpc_server: the gymrpc gRPC server and its simulators."""

__version__ = "0.1.0"
