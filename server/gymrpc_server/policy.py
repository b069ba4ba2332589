"""Who may do what: privileged environment options and access to sub-environment attributes.

Authentication (who is calling) is :mod:`gymrpc_server.auth`'s job; this module holds
the authorization rules, each once:

* only admins may set a privileged option (such as ``expose_hidden_state``) to
  anything but its default;
* names that are empty or start with an underscore are never reachable through
  Call, GetAttr and SetAttr;
* attribute access is for admins only unless the server opens it to every user, and
  even then privileged option names stay admin-only;
* a reflective method (``get_wrapper_attr``, ``call``...) is judged by the attribute
  it reaches as well as by its own name.

Example:
    >>> from gymrpc_server.auth import Identity, Role
    >>> policy = AccessPolicy(frozenset({"expose_hidden_state"}), attribute_access="all")
    >>> policy.check_attribute(Identity("bob", Role.USER), "np_random_seed", "name")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gymrpc.errors import PermissionDeniedError
from gymrpc_server.auth import Identity
from gymrpc_server.options import NO_DEFAULT, OptionInfo

__all__ = ["REFLECTIVE_METHODS", "AccessPolicy"]

#: Methods that reach another attribute by the name in their first argument: that
#: name passes the same checks as the method's own.
REFLECTIVE_METHODS: Final = frozenset(
    {"get_wrapper_attr", "set_wrapper_attr", "has_wrapper_attr", "get_attr", "set_attr", "call"}
)


class AccessPolicy:
    """The authorization rules of one server.

    Args:
        privileged_options: Option names only admins may change from their default;
            they are also never reachable as attributes by non-admins.
        attribute_access: ``"admin"`` (only admins use Call/GetAttr/SetAttr) or
            ``"all"``.
    """

    def __init__(self, privileged_options: frozenset[str], *, attribute_access: str) -> None:
        if attribute_access not in ("admin", "all"):
            raise ValueError(f"attribute_access is {attribute_access!r}; expected 'admin' or 'all'")
        self.privileged_options = privileged_options
        self._users_may_access_attributes = attribute_access == "all"

    def check_options(
        self,
        identity: Identity,
        accepted: Mapping[str, OptionInfo],
        options: Mapping[str, Any],
        *,
        field: str = "env_options",
    ) -> None:
        """Refuse a non-admin setting a privileged option to anything but its default.

        Args:
            identity: The caller.
            accepted: The environment's options (their ``privileged`` flag and default).
            options: The checked option values of the request.
            field: Field path of the options, for the error.

        Raises:
            PermissionDeniedError: Naming the option.
        """
        if identity.is_admin:
            return
        for name, value in options.items():
            info = accepted.get(name)
            if info is None or not info.privileged:
                continue
            default = None if info.default is NO_DEFAULT else info.default
            if value != default:
                raise PermissionDeniedError(
                    f"{field}.{name}: only admins may set {name} (to {value!r}); user "
                    f"{identity.user!r} has the role {identity.role.value!r}",
                    field=f"{field}.{name}",
                )

    def check_attribute(self, identity: Identity, name: str, field: str) -> None:
        """Refuse access to an attribute the caller may not reach.

        Args:
            identity: The caller.
            name: The attribute or method name.
            field: Field path of the name in the request, for the error.

        Raises:
            PermissionDeniedError: Naming the field and the name.
        """
        if not name or name.startswith("_"):
            raise PermissionDeniedError(
                f"{field}: {name!r}; names that are empty or start with an underscore are "
                "never accessible",
                field=field,
            )
        if identity.is_admin:
            return
        if not self._users_may_access_attributes:
            raise PermissionDeniedError(
                f"{field}: reading or changing environment attributes ({name!r}) is "
                f"reserved to admins on this server; user {identity.user!r} is not one",
                field=field,
            )
        if name in self.privileged_options:
            raise PermissionDeniedError(
                f"{field}: {name!r} is privileged; only admins may access it", field=field
            )
