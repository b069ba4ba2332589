"""Environments that ship with gymrpc_server, registered with Gymnasium on import."""


def register_envs() -> None:
    """Register gymrpc's own environments with Gymnasium; safe to call repeatedly."""
    from gymrpc_server.envs.turbofan import register as register_turbofan  # noqa: PLC0415

    register_turbofan()
    import gymrpc_server.envs.conformance  # noqa: F401, PLC0415 (registers gymrpc/Conformance-v0)
