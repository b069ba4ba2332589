"""Which environments the server can serve, their options, and how to build them.

Everything registered with Gymnasium (after importing ``--env-module`` modules) is a
candidate; an allow-list narrows it down. A session's batch is built either with the
environment's native vector implementation (its ``vector_entry_point``) or as a
``SyncVectorEnv`` over single environments. Ids in Gymnasium's ``module:Env-v0`` form
are refused: building them would import a module named by the client.

Creating a batch is two steps: :meth:`Catalogue.plan` chooses the vectorization and
validates the options (nothing is built, so a refusal costs nothing), then
:meth:`Catalogue.build` constructs the batch the plan describes.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import inspect
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium
from gymnasium.envs.registration import EnvSpec, load_env_creator
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from gymrpc.errors import (
    EnvironmentFailureError,
    EnvNotFoundError,
    GymrpcError,
    InvalidOptionError,
    UnsupportedAutoresetError,
)
from gymrpc.fieldpath import join_key
from gymrpc_server.options import (
    NO_DEFAULT,
    OptionInfo,
    OptionKind,
    discover_options,
    takes_any_keyword,
)
from gymrpc_server.validation import check_options

__all__ = ["BuildPlan", "BuiltEnv", "Catalogue", "EnvEntry", "Vectorization", "render_modes_of"]

logger = logging.getLogger(__name__)


class Vectorization(enum.Enum):
    """How a session's batch runs; the values are Gymnasium's ``vectorization_mode`` names."""

    NATIVE = "vector_entry_point"
    SYNC = "sync"


#: Wraps sub-environment i of a SyncVectorEnv batch.
SingleWrapper = Callable[[gymnasium.Env[Any, Any], int], gymnasium.Env[Any, Any]]

# gymnasium.make() consumes these itself instead of passing them to the constructor.
_MAKE_PARAMETERS = ("max_episode_steps",)
_ALL_MODES = frozenset(AutoresetMode)


@dataclass(frozen=True)
class EnvEntry:
    """What the server knows about one registered environment without building it.

    Attributes:
        env_id: The registered id.
        spec: Gymnasium's registration.
        sync_options: Options of the single environment, or ``None`` when it has no
            ``entry_point`` (then it cannot run under SyncVectorEnv).
        native_options: Options of the native vector environment, or ``None`` without
            a ``vector_entry_point``.
        native_modes: Autoreset modes the native vector environment supports.
        native_takes_autoreset: Whether its constructor has an ``autoreset_mode``
            parameter.
        render_modes: Render modes the environment declares.
        native_render_modes: Render modes its native vector implementation declares.
        description: First line of its docstring.
        metadata: The metadata of its entry point (class attribute), ``{}`` if none.
        docstring: The entry point's whole docstring.
        make_options: Sync options that ``gymnasium.make`` handles itself (such as
            ``max_episode_steps``, a TimeLimit) because the constructor lacks them.
    """

    env_id: str
    spec: EnvSpec
    sync_options: dict[str, OptionInfo] | None
    native_options: dict[str, OptionInfo] | None
    native_modes: frozenset[AutoresetMode]
    native_takes_autoreset: bool
    render_modes: tuple[str, ...]
    description: str
    make_options: frozenset[str] = frozenset()
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    docstring: str = ""
    native_render_modes: tuple[str, ...] = ()

    @property
    def options(self) -> dict[str, OptionInfo]:
        """All options, whichever vectorization accepts them."""
        return {**(self.sync_options or {}), **(self.native_options or {})}

    @property
    def autoreset_modes(self) -> frozenset[AutoresetMode]:
        """Autoreset modes some vectorization of this environment supports."""
        return _ALL_MODES if self.sync_options is not None else self.native_modes


@dataclass(frozen=True)
class BuildPlan:
    """How a batch will be built, decided before anything is built.

    Attributes:
        vectorization: Native or SyncVectorEnv.
        options: The request's options, checked and converted.
        effective: The options in force, defaults included.
        accepted: The options the chosen vectorization accepts.
    """

    vectorization: Vectorization
    options: dict[str, Any]
    effective: dict[str, Any]
    accepted: Mapping[str, OptionInfo]


@dataclass
class BuiltEnv:
    """A built batch and how it was built.

    Attributes:
        env: The vector environment.
        vectorization: Native or SyncVectorEnv.
        options: The options in force, defaults included.
    """

    env: VectorEnv[Any, Any, Any]
    vectorization: Vectorization
    options: dict[str, Any]


def _load(entry_point: str | Callable[..., Any] | None) -> Callable[..., Any] | None:
    if entry_point is None:
        return None
    return entry_point if callable(entry_point) else load_env_creator(entry_point)


def _first_doc_line(creator: Callable[..., Any] | None) -> str:
    for line in (inspect.getdoc(creator) or "").splitlines():
        text = line.strip().strip("#").strip()
        if text and text.lower() != "description":
            return text
    return ""


def render_modes_of(declared: tuple[str, ...]) -> list[str]:
    """The render modes a remote session may ask for, as ``gymnasium.make`` accepts them.

    Every declared mode but ``human`` (no window on a server), and for each of those
    its ``_list`` variant, which ``gymnasium.make`` implements with ``RenderCollection``
    (frames collected since the last render).

    >>> render_modes_of(("human", "rgb_array"))
    ['rgb_array', 'rgb_array_list']
    """
    usable = [mode for mode in declared if mode != "human"]
    return usable + [f"{mode}_list" for mode in usable if not mode.endswith("_list")]


def _close_names(name: str, candidates: list[str]) -> list[str]:
    """Candidates that look like ``name`` (case-insensitive first, then by similarity)."""
    folded = [c for c in candidates if c.lower() == name.lower()]
    return folded or difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)


def _named_option(error: BaseException, names: list[str]) -> str | None:
    """The one option an environment's error message names, if exactly one is named.

    Constructors say which argument is wrong in their message ("option 'step_size' must
    be ..."); naming that option in the field path tells a client what to fix.
    """
    text = str(error)
    named = [
        name
        for name in names
        if re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text)
    ]
    return named[0] if len(named) == 1 else None


def _fixed_mode(creator: Callable[..., Any]) -> AutoresetMode | None:
    metadata = getattr(creator, "metadata", None)
    mode = metadata.get("autoreset_mode") if isinstance(metadata, Mapping) else None
    return AutoresetMode(mode) if mode is not None else None


class Catalogue:
    """The environments a server may serve.

    Args:
        allowed_env_ids: When not empty, the only ids served.
        privileged_options: Options only admins may change from their defaults.
    """

    def __init__(self, allowed_env_ids: frozenset[str], privileged_options: frozenset[str]):
        self._allowed = allowed_env_ids
        self._privileged = privileged_options
        self._entries: dict[str, EnvEntry] = {}
        self._lock = threading.Lock()

    def env_ids(self) -> list[str]:
        """Registered ids this server may serve (servable or not), sorted."""
        ids = (i for i in gymnasium.registry if not self._allowed or i in self._allowed)
        return sorted(ids)

    def entry(self, env_id: str) -> EnvEntry:
        """Look up an environment.

        Args:
            env_id: The requested id.

        Returns:
            Its entry.

        Raises:
            EnvNotFoundError: If the id is not registered, not allowed, or in the
                ``module:Env`` form.
        """
        if (
            ":" in env_id
            or env_id not in gymnasium.registry
            or (self._allowed and env_id not in self._allowed)
        ):
            close = _close_names(env_id, self.env_ids())
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise EnvNotFoundError(
                f"env_id: {env_id!r} is not served here; {hint}expected a served id "
                "(ListEnvironments lists them: `gymrpc envs` on the command line, "
                "gymrpc.list_environments() in Python)",
                field="env_id",
                metadata={"resource_name": env_id},
            )
        with self._lock:
            cached = self._entries.get(env_id)
        if cached is not None:
            return cached
        entry = self._inspect(gymnasium.spec(env_id))
        with self._lock:
            self._entries[env_id] = entry
        return entry

    def _inspect(self, spec: EnvSpec) -> EnvEntry:
        try:
            single = _load(spec.entry_point)
            vector = _load(spec.vector_entry_point)
        except (ImportError, AttributeError, gymnasium.error.Error) as error:
            raise EnvNotFoundError(
                f"env_id: {spec.id!r} is registered but its code cannot be loaded here: {error}",
                field="env_id",
                metadata={"resource_name": spec.id},
            ) from error
        sync_options = None
        make_options: set[str] = set()
        creator = single or vector
        metadata = getattr(creator, "metadata", None)
        metadata = metadata if isinstance(metadata, Mapping) else {}
        units = metadata.get("gymrpc.option_units")
        units = units if isinstance(units, Mapping) else {}
        render_modes = metadata.get("render_modes", [])
        if single is not None:
            sync_options = _with_units(
                discover_options(single, spec.kwargs, self._privileged), units
            )
            if render_modes and "render_mode" not in sync_options and takes_any_keyword(single):
                # gymnasium.make passes render_mode to every environment that declares
                # render modes; MuJoCo's take it through **kwargs, unnamed.
                sync_options["render_mode"] = OptionInfo(
                    name="render_mode",
                    kind=OptionKind.STRING,
                    default=spec.kwargs.get("render_mode"),
                    nullable=True,
                    description="How the environment renders (gymnasium.make's render_mode).",
                )
            for name in _MAKE_PARAMETERS:
                if name not in sync_options:
                    make_options.add(name)
                    sync_options[name] = OptionInfo(
                        name=name,
                        kind=OptionKind.INT,
                        default=spec.max_episode_steps,
                        nullable=True,
                        description="Episode step limit (a TimeLimit wrapper).",
                    )
        native_options, native_modes, takes_autoreset = None, frozenset[AutoresetMode](), False
        if vector is not None:
            native_options = _with_units(
                discover_options(vector, spec.kwargs, self._privileged), units
            )
            target = vector.__init__ if inspect.isclass(vector) else vector
            takes_autoreset = "autoreset_mode" in inspect.signature(target).parameters
            fixed = _fixed_mode(vector)
            native_modes = _ALL_MODES if takes_autoreset else frozenset({fixed} if fixed else ())
        vector_metadata = getattr(vector, "metadata", None)
        native_render_modes = (
            vector_metadata.get("render_modes", []) if isinstance(vector_metadata, Mapping) else []
        )
        return EnvEntry(
            env_id=spec.id,
            spec=spec,
            sync_options=sync_options,
            native_options=native_options,
            native_modes=native_modes,
            native_takes_autoreset=takes_autoreset,
            render_modes=tuple(render_modes),
            description=_first_doc_line(creator),
            make_options=frozenset(make_options),
            metadata=dict(metadata),
            docstring=inspect.getdoc(creator) or "",
            native_render_modes=tuple(native_render_modes),
        )

    def plan(
        self,
        entry: EnvEntry,
        *,
        autoreset_mode: AutoresetMode,
        vectorization: Vectorization | None,
        options: Mapping[str, Any],
    ) -> BuildPlan:
        """Choose how to build a batch and validate its options; nothing is built.

        Args:
            entry: The environment.
            autoreset_mode: The autoreset mode.
            vectorization: How to run the batch, or ``None`` to prefer native.
            options: Decoded, not yet validated, options.

        Returns:
            The plan :meth:`build` follows.

        Raises:
            InvalidOptionError: For unknown or ill-typed options, or a render mode the
                environment cannot render remotely.
            UnsupportedAutoresetError: If the requested vectorization cannot run the
                autoreset mode (or does not exist).
        """
        chosen = self._choose(entry, autoreset_mode, vectorization, options)
        accepted = entry.native_options if chosen is Vectorization.NATIVE else entry.sync_options
        assert accepted is not None  # _choose only picks an available vectorization
        checked = check_options(options, accepted, env_id=entry.env_id)
        self._check_render_mode(entry, chosen, checked.get("render_mode"))
        effective = {
            name: info.default
            for name, info in accepted.items()
            if info.default is not NO_DEFAULT and name not in checked
        } | checked
        return BuildPlan(chosen, checked, effective, accepted)

    def build(
        self,
        entry: EnvEntry,
        plan: BuildPlan,
        *,
        num_envs: int,
        autoreset_mode: AutoresetMode,
        wrap_single: SingleWrapper | None = None,
    ) -> BuiltEnv:
        """Build a batch of an environment as planned.

        Args:
            entry: The environment.
            plan: From :meth:`plan`, with the same autoreset mode.
            num_envs: Batch size.
            autoreset_mode: The autoreset mode.
            wrap_single: Under SyncVectorEnv, wraps sub-environment i (the evaluation
                sessions' seeding); ignored for a native batch.

        Returns:
            The built batch.

        Raises:
            InvalidOptionError: If the environment rejects the options (the field names
                the option when the environment's message names one).
            UnsupportedAutoresetError: If a native batch does not run in the mode.
            EnvNotFoundError: If the environment cannot be built on this server.
            EnvironmentFailureError: If its constructor fails for another reason.
        """
        env = self._construct(
            entry,
            plan.vectorization,
            num_envs,
            autoreset_mode,
            plan.options,
            wrap_single=wrap_single,
        )
        if env.metadata.get("autoreset_mode") != autoreset_mode:
            env.close()
            raise UnsupportedAutoresetError(
                f"autoreset_mode: {entry.env_id} built natively runs in "
                f"{env.metadata.get('autoreset_mode')}, not {autoreset_mode}",
                field="autoreset_mode",
            )
        return BuiltEnv(env=env, vectorization=plan.vectorization, options=plan.effective)

    @staticmethod
    def _choose(
        entry: EnvEntry,
        mode: AutoresetMode,
        requested: Vectorization | None,
        options: Mapping[str, Any],
    ) -> Vectorization:
        native_ok = entry.native_options is not None and mode in entry.native_modes
        if requested is Vectorization.NATIVE and not native_ok:
            if entry.native_options is None:
                reason = "has no native vector implementation"
            else:
                reason = f"runs natively only in {sorted(m.name for m in entry.native_modes)}"
            raise UnsupportedAutoresetError(
                f"vectorization_mode: {entry.env_id} {reason}; asked for {mode.name}",
                field="vectorization_mode",
            )
        if requested is Vectorization.SYNC and entry.sync_options is None:
            raise UnsupportedAutoresetError(
                f"vectorization_mode: {entry.env_id} has no single-environment entry point, "
                "so it cannot run under SyncVectorEnv",
                field="vectorization_mode",
            )
        if requested is not None:
            return requested
        native_options = entry.native_options or {}
        # The *_list render modes exist only through gymnasium.make's RenderCollection,
        # i.e. under SyncVectorEnv, unless the native implementation declares them.
        render_mode = options.get("render_mode")
        native_renders = render_mode is None or render_mode in entry.native_render_modes
        if native_ok and native_renders and all(name in native_options for name in options):
            return Vectorization.NATIVE
        if entry.sync_options is not None:
            return Vectorization.SYNC
        if not native_ok:
            raise UnsupportedAutoresetError(
                f"autoreset_mode: {entry.env_id} supports only "
                f"{sorted(m.name for m in entry.native_modes)}; asked for {mode.name}",
                field="autoreset_mode",
            )
        return Vectorization.NATIVE

    @staticmethod
    def _check_render_mode(entry: EnvEntry, chosen: Vectorization, render_mode: Any) -> None:
        if render_mode is None:
            return
        if chosen is Vectorization.NATIVE:
            usable = [mode for mode in entry.native_render_modes if mode != "human"]
            if render_mode not in usable and render_mode in render_modes_of(entry.render_modes):
                raise InvalidOptionError(
                    f"env_options.render_mode: {render_mode!r} is available with "
                    f"vectorization_mode sync only; {entry.env_id}'s native vector "
                    f"implementation renders {usable or 'nothing'}",
                    field="env_options.render_mode",
                )
        else:
            usable = render_modes_of(entry.render_modes)
        if render_mode not in usable:
            expected = f"one of {usable}" if usable else f"None: {entry.env_id} renders nothing"
            raise InvalidOptionError(
                f"env_options.render_mode: {render_mode!r} is not available; expected "
                f"{expected} ('human' opens a window and is never available on a server)",
                field="env_options.render_mode",
            )

    @staticmethod
    def _construct(
        entry: EnvEntry,
        chosen: Vectorization,
        num_envs: int,
        mode: AutoresetMode,
        options: dict[str, Any],
        *,
        wrap_single: SingleWrapper | None = None,
    ) -> VectorEnv[Any, Any, Any]:
        try:
            if chosen is Vectorization.NATIVE:
                kwargs = dict(options)
                if entry.native_takes_autoreset:
                    kwargs["autoreset_mode"] = mode
                return gymnasium.make_vec(
                    entry.env_id,
                    num_envs=num_envs,
                    vectorization_mode="vector_entry_point",
                    **kwargs,
                )
            make_side = {n: v for n, v in options.items() if n in entry.make_options}
            constructor_side = {n: v for n, v in options.items() if n not in make_side}
            # Constructor options ride in the spec so that gymnasium.make passes them on
            # even when their name is also one of make()'s own parameters.
            spec = dataclasses.replace(entry.spec, kwargs={**entry.spec.kwargs, **constructor_side})
            make_one = functools.partial(gymnasium.make, spec, **make_side)
            if wrap_single is None:
                return SyncVectorEnv([make_one] * num_envs, autoreset_mode=mode)
            makers = [
                functools.partial(lambda i: wrap_single(make_one(), i), index)
                for index in range(num_envs)
            ]
            return SyncVectorEnv(makers, autoreset_mode=mode)
        except GymrpcError:
            raise
        except (ImportError, gymnasium.error.DependencyNotInstalled) as error:
            raise EnvNotFoundError(
                f"env_id: {entry.env_id!r} cannot be built on this server: {error}",
                field="env_id",
                metadata={"resource_name": entry.env_id},
            ) from error
        except (ValueError, TypeError, AssertionError, gymnasium.error.Error) as error:
            name = _named_option(error, list(options))
            field = "env_options" if name is None else join_key("env_options", name)
            given = f"{name}={options[name]!r}" if name is not None else f"the options {options}"
            raise InvalidOptionError(
                f"{field}: {entry.env_id} rejected {given}: {error}", field=field
            ) from error
        except Exception as error:
            logger.exception("building %s failed", entry.env_id)
            raise EnvironmentFailureError(
                f"{entry.env_id} failed to build: {type(error).__name__}: {error}"
            ) from error


def _with_units(options: dict[str, OptionInfo], units: Mapping[str, Any]) -> dict[str, OptionInfo]:
    """The options with the units the environment's metadata gives them."""
    return {
        name: dataclasses.replace(info, unit=str(units[name])) if name in units else info
        for name, info in options.items()
    }
