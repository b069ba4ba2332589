"""Recorded episodes on disk: the format :class:`gymrpc.wrappers.RecordEpisodes` writes.

A recording is a directory (``docs/recording.md`` is the reference)::

    recording.json        what was recorded: env id and options, spaces, labels, ...
    episodes.jsonl        one JSON line per finished episode: id, file, seed, return, ...
    episodes/000000.npz   one NumPy archive per episode, self-contained

Every archive holds the episode's arrays (``observations``, ``actions``, ``rewards``,
``terminations``, ``truncations`` and ``infos/...``) plus the JSON of its index line
and of ``recording.json``, so a single ``.npz`` file is readable alone. Archives are
written with ``allow_pickle=False`` semantics: numbers, booleans and strings only.

Example:
    >>> from gymrpc.recording import load_episodes
    >>> episodes = load_episodes("runs/engines")  # doctest: +SKIP
    >>> episode = episodes[0]  # doctest: +SKIP
    >>> episode.observations.shape, episode.rewards.shape, episode.seed  # doctest: +SKIP
    ((38, 10, 9), (37,), 0)
"""

from __future__ import annotations

import enum
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from gymnasium import spaces

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "RecordedEpisode",
    "RecordingInfo",
    "RecordingWriter",
    "load_episode",
    "load_episodes",
    "structure_of",
]

logger = logging.getLogger(__name__)

#: The ``format`` field of ``recording.json``.
FORMAT: Final = "gymrpc-episodes"
#: The format's version: a reader refuses a newer one rather than misread it.
FORMAT_VERSION: Final = 1

HEADER_FILE: Final = "recording.json"
INDEX_FILE: Final = "episodes.jsonl"
EPISODES_DIR: Final = "episodes"
# Keys of the two JSON documents stored inside every archive.
_RECORDING_KEY: Final = "recording"
_EPISODE_KEY: Final = "episode"
_ARRAY_SPACES: Final = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


@dataclass(frozen=True)
class RecordingInfo:
    """What a recording holds: the environment and how it ran (``recording.json``).

    Attributes:
        env_id: The environment id, when known.
        env_options: The environment's options, when known (a gymrpc session's options,
            or the keyword arguments of a local environment's spec).
        num_envs: Sub-environments of the recorded vector environment.
        autoreset_mode: The autoreset mode's value (``"NextStep"``, ``"SameStep"``,
            ``"Disabled"``).
        observation_space: ``str()`` of one sub-environment's observation space.
        action_space: ``str()`` of one sub-environment's action space.
        observation_labels: Names and units of observation elements, as in the
            ``gymrpc.observation_labels`` metadata (a list of ``{"path", "axis",
            "labels": [{"name", "unit", "description"}]}``), or ``None``.
        metadata: Free JSON data given by the recorder (a policy name, ...).
        observation_structure: How observations nest (see :func:`structure_of`).
        action_structure: How actions nest.
        gymrpc_version: The gymrpc version that wrote it.
        created: When recording started (ISO 8601, UTC).
    """

    env_id: str | None = None
    env_options: dict[str, Any] = field(default_factory=dict)
    num_envs: int = 1
    autoreset_mode: str = "NextStep"
    observation_space: str = ""
    action_space: str = ""
    observation_labels: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    observation_structure: Any = "array"
    action_structure: Any = "array"
    gymrpc_version: str = ""
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        """The ``recording.json`` document."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "env_id": self.env_id,
            "env_options": jsonable(self.env_options),
            "num_envs": self.num_envs,
            "autoreset_mode": self.autoreset_mode,
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "observation_labels": jsonable(self.observation_labels),
            "metadata": jsonable(self.metadata),
            "observation_structure": self.observation_structure,
            "action_structure": self.action_structure,
            "gymrpc_version": self.gymrpc_version,
            "created": self.created,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any], source: str) -> RecordingInfo:
        """Read a ``recording.json`` document; ``source`` names it in errors.

        Raises:
            ValueError: If it is not a gymrpc recording or its version is newer.
        """
        if document.get("format") != FORMAT:
            raise ValueError(
                f"{source}: format is {document.get('format')!r}; expected {FORMAT!r} "
                "(not a gymrpc recording)"
            )
        version = document.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(
                f"{source}: format version {version!r}; this gymrpc reads versions up to "
                f"{FORMAT_VERSION} (upgrade gymrpc)"
            )
        return cls(
            env_id=document.get("env_id"),
            env_options=dict(document.get("env_options") or {}),
            num_envs=int(document.get("num_envs", 1)),
            autoreset_mode=str(document.get("autoreset_mode", "NextStep")),
            observation_space=str(document.get("observation_space", "")),
            action_space=str(document.get("action_space", "")),
            observation_labels=document.get("observation_labels"),
            metadata=dict(document.get("metadata") or {}),
            observation_structure=document.get("observation_structure", "array"),
            action_structure=document.get("action_structure", "array"),
            gymrpc_version=str(document.get("gymrpc_version", "")),
            created=str(document.get("created", "")),
        )


@dataclass(frozen=True, eq=False)
class RecordedEpisode:
    """One finished episode of one sub-environment.

    With T the number of ``step()`` calls of the episode, the arrays are aligned as in
    Minari: ``observations[0]`` is the reset observation and ``observations[t + 1]``
    the result of ``actions[t]``; ``infos`` has T + 1 rows (row 0 is the reset's info).

    Attributes:
        observations: Shape (T + 1, ...) (a dict or tuple of such arrays for Dict or
            Tuple spaces). The last one is the terminal observation, in every
            autoreset mode.
        actions: Shape (T, ...), likewise nested for Dict or Tuple action spaces.
        rewards: Shape (T,), the environment's dtype (float64 for vector envs).
        terminations: Shape (T,), bool.
        truncations: Shape (T,), bool.
        infos: Gymnasium's vector-info layout over time: each key ``k`` maps to an
            array of T + 1 rows (or a dict of such, for nested infos), with a bool mask
            ``_k`` saying in which rows the key was present (absent rows hold zeros or
            empty strings). Values that are not numbers, booleans or strings are left
            out (and logged).
        seed: The seed of the reset that started the episode, ``None`` when it
            continued the sub-environment's random stream (autoresets, unseeded resets).
        env_index: The sub-environment it ran in.
        env_episode: Its position among the episodes that sub-environment started since
            recording began (from 0, counting unfinished ones that were not recorded):
            the episodes of one sub-environment, in this order, continue one random
            stream from its last seed.
        episode_id: Its position in the recording (the order episodes ended in).
        recording: What the recording holds (env id, options, labels...).
    """

    observations: Any
    actions: Any
    rewards: npt.NDArray[Any]
    terminations: npt.NDArray[np.bool_]
    truncations: npt.NDArray[np.bool_]
    infos: dict[str, Any]
    seed: int | None = None
    env_index: int = 0
    env_episode: int = 0
    episode_id: int = 0
    recording: RecordingInfo = field(default_factory=RecordingInfo)

    @property
    def length(self) -> int:
        """Number of ``step()`` calls, T."""
        return len(self.rewards)

    @property
    def episode_return(self) -> float:
        """The undiscounted sum of the rewards."""
        return float(np.sum(self.rewards, dtype=np.float64))

    @property
    def terminated(self) -> bool:
        """The episode ended with a termination."""
        return bool(self.terminations[-1]) if self.length else False

    @property
    def truncated(self) -> bool:
        """The episode ended with a truncation."""
        return bool(self.truncations[-1]) if self.length else False

    def index_entry(self, file: str) -> dict[str, Any]:
        """The JSON line of ``episodes.jsonl`` for this episode, stored in ``file``."""
        return {
            "episode_id": self.episode_id,
            "file": file,
            "env_index": self.env_index,
            "env_episode": self.env_episode,
            "seed": self.seed,
            "length": self.length,
            "return": self.episode_return,
            "terminated": self.terminated,
            "truncated": self.truncated,
        }


# --- Structures of observations and actions -----------------------------------------


def structure_of(space: spaces.Space[Any], what: str = "space") -> Any:
    """Describe how values of ``space`` nest, as JSON.

    ``"array"`` for a Box, Discrete, MultiDiscrete or MultiBinary; ``{"dict": [[key,
    structure], ...]}`` for a Dict; ``{"tuple": [structure, ...]}`` for a Tuple.

    Raises:
        TypeError: For spaces whose values are not fixed-shape arrays (Text, Graph,
            Sequence, OneOf, custom spaces).
    """
    if isinstance(space, _ARRAY_SPACES):
        return "array"
    if isinstance(space, spaces.Dict):
        return {
            "dict": [[key, structure_of(sub, f"{what}[{key!r}]")] for key, sub in space.items()]
        }
    if isinstance(space, spaces.Tuple):
        return {"tuple": [structure_of(sub, f"{what}[{i}]") for i, sub in enumerate(space)]}
    raise TypeError(
        f"{what}: {space} cannot be recorded; expected Box, Discrete, MultiDiscrete, "
        "MultiBinary, or Dict/Tuple of them"
    )


def _quote(part: object) -> str:
    # Archive member names use "/" between levels, so a key's own "/" and "%" are escaped.
    return str(part).replace("%", "%25").replace("/", "%2F")


def _unquote(part: str) -> str:
    return part.replace("%2F", "/").replace("%2f", "/").replace("%25", "%")


def flatten(value: Any, structure: Any, name: str) -> Iterator[tuple[str, Any]]:
    """Yield ``(member name, leaf)`` for a value nested as ``structure``."""
    if structure == "array":
        yield name, value
    elif "dict" in structure:
        for key, sub in structure["dict"]:
            yield from flatten(value[key], sub, f"{name}/{_quote(key)}")
    else:
        for index, sub in enumerate(structure["tuple"]):
            yield from flatten(value[index], sub, f"{name}/{index}")


def leaf_names(structure: Any, name: str) -> list[str]:
    """The member names :func:`flatten` gives the leaves of ``structure``."""
    if structure == "array":
        return [name]
    if "dict" in structure:
        return [
            leaf
            for key, sub in structure["dict"]
            for leaf in leaf_names(sub, f"{name}/{_quote(key)}")
        ]
    return [
        leaf
        for index, sub in enumerate(structure["tuple"])
        for leaf in leaf_names(sub, f"{name}/{index}")
    ]


def unflatten(leaves: Mapping[str, Any], structure: Any, name: str) -> Any:
    """Rebuild a nested value from the leaves :func:`flatten` named."""
    if structure == "array":
        return leaves[name]
    if "dict" in structure:
        return {
            key: unflatten(leaves, sub, f"{name}/{_quote(key)}") for key, sub in structure["dict"]
        }
    return tuple(
        unflatten(leaves, sub, f"{name}/{index}") for index, sub in enumerate(structure["tuple"])
    )


# --- JSON -------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """``value`` as JSON data: enums by value, numpy values as lists, others by ``repr``."""
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, np.ndarray | np.generic):
        return jsonable(value.tolist())
    return repr(value)


# --- Writing ------------------------------------------------------------------------------


def _info_members(infos: Mapping[str, Any], name: str) -> Iterator[tuple[str, Any]]:
    for key, value in infos.items():
        member = f"{name}/{_quote(key)}"
        if isinstance(value, Mapping):
            yield from _info_members(value, member)
        else:
            yield member, value


def episode_arrays(episode: RecordedEpisode, entry: Mapping[str, Any]) -> dict[str, Any]:
    """The members of an episode's archive, ``entry`` being its index line."""
    recording = episode.recording
    arrays: dict[str, Any] = {}
    arrays.update(flatten(episode.observations, recording.observation_structure, "observations"))
    arrays.update(flatten(episode.actions, recording.action_structure, "actions"))
    arrays["rewards"] = episode.rewards
    arrays["terminations"] = episode.terminations
    arrays["truncations"] = episode.truncations
    arrays.update(_info_members(episode.infos, "infos"))
    arrays[_RECORDING_KEY] = np.array(json.dumps(recording.to_json()))
    arrays[_EPISODE_KEY] = np.array(json.dumps(entry))
    return arrays


class RecordingWriter:
    """Writes a recording directory: the header now, then one archive per episode.

    Each archive is written under a temporary name and renamed, and its index line is
    appended after it: a reader (or a crash) never sees half an episode, and no file
    stays open between episodes.

    Args:
        path: A directory that does not exist yet, or an empty one.
        info: What the recording holds.
        compress: Compress the archives (``numpy.savez_compressed``); slower to write,
            and sensor readings compress little.

    Raises:
        FileExistsError: If ``path`` is a file or a non-empty directory.
    """

    def __init__(
        self, path: str | os.PathLike[str], info: RecordingInfo, *, compress: bool = False
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise FileExistsError(
                f"path: {str(self.path)!r} exists and is not an empty directory; "
                "expected a new directory for the recording"
            )
        (self.path / EPISODES_DIR).mkdir(parents=True, exist_ok=True)
        self.info = info
        self.compress = compress
        (self.path / HEADER_FILE).write_text(json.dumps(info.to_json(), indent=2) + "\n")
        (self.path / INDEX_FILE).touch()
        self.episodes_written = 0
        self.closed = False

    def write(self, episode: RecordedEpisode) -> None:
        """Write one episode (its ``episode_id`` names the file)."""
        if self.closed:
            raise RuntimeError(f"the recording {str(self.path)!r} is closed")
        file = f"{EPISODES_DIR}/{episode.episode_id:06d}.npz"
        entry = episode.index_entry(file)
        target = self.path / file
        partial = target.with_name(target.name + ".partial")
        save = np.savez_compressed if self.compress else np.savez
        with partial.open("wb") as stream:
            save(stream, **episode_arrays(episode, entry))
        partial.replace(target)
        # Opened per episode, so that no file stays open between episodes (a recorder
        # never closed leaks nothing) and every line is on disk once written.
        with (self.path / INDEX_FILE).open("a", encoding="utf-8") as index:
            index.write(json.dumps(entry) + "\n")
        self.episodes_written += 1

    def close(self) -> None:
        """Refuse further episodes (idempotent); the files are complete already."""
        self.closed = True


# --- Reading ------------------------------------------------------------------------------


def _nest_infos(members: Mapping[str, Any]) -> dict[str, Any]:
    infos: dict[str, Any] = {}
    for name, value in members.items():
        parts = [_unquote(part) for part in name.split("/")[1:]]
        level = infos
        for part in parts[:-1]:
            level = level.setdefault(part, {})
        level[parts[-1]] = value
    return infos


def _read_archive(source: Path, recording: RecordingInfo | None = None) -> RecordedEpisode:
    with np.load(source, allow_pickle=False) as archive:
        members = {name: archive[name] for name in archive.files}
    try:
        entry = json.loads(str(members.pop(_EPISODE_KEY)))
        header = json.loads(str(members.pop(_RECORDING_KEY)))
    except KeyError as error:
        raise ValueError(f"{source}: not an episode of a gymrpc recording (no {error})") from None
    info = recording or RecordingInfo.from_json(header, str(source))
    seed = entry.get("seed")
    return RecordedEpisode(
        observations=unflatten(members, info.observation_structure, "observations"),
        actions=unflatten(members, info.action_structure, "actions"),
        rewards=members["rewards"],
        terminations=members["terminations"],
        truncations=members["truncations"],
        infos=_nest_infos({k: v for k, v in members.items() if k.startswith("infos/")}),
        seed=None if seed is None else int(seed),
        env_index=int(entry.get("env_index", 0)),
        env_episode=int(entry.get("env_episode", 0)),
        episode_id=int(entry.get("episode_id", 0)),
        recording=info,
    )


def _index_entries(directory: Path) -> list[dict[str, Any]]:
    entries = []
    index = directory / INDEX_FILE
    if not index.exists():
        return []
    for line in index.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            # A process killed while appending leaves at most one partial last line.
            logger.warning("%s: skipping an incomplete index line", index)
    return entries


def _recording_of(directory: Path) -> RecordingInfo:
    header = directory / HEADER_FILE
    if not header.is_file():
        raise FileNotFoundError(
            f"path: {str(directory)!r} has no {HEADER_FILE}; expected a recording directory "
            "written by gymrpc.wrappers.RecordEpisodes, or one of its .npz files"
        )
    return RecordingInfo.from_json(json.loads(header.read_text(encoding="utf-8")), str(header))


def load_episodes(path: str | os.PathLike[str]) -> list[RecordedEpisode]:
    """Read every episode of a recording, in the order they ended.

    Args:
        path: A recording directory, or one episode's ``.npz`` file.

    Returns:
        The episodes, with their arrays' dtypes and shapes as recorded.

    Raises:
        FileNotFoundError: If ``path`` is neither.
        ValueError: If it is not a gymrpc recording, or a newer format version.
    """
    source = Path(path)
    if source.is_file():
        return [_read_archive(source)]
    recording = _recording_of(source)
    return [_read_archive(source / entry["file"], recording) for entry in _index_entries(source)]


def load_episode(path: str | os.PathLike[str], index: int = 0) -> RecordedEpisode:
    """Read one episode of a recording without reading the others.

    Args:
        path: A recording directory, or one episode's ``.npz`` file (``index`` 0).
        index: Its position in the recording (negative counts from the end).

    Raises:
        IndexError: If the recording has no such episode.
    """
    source = Path(path)
    if source.is_file():
        entries: Sequence[dict[str, Any]] = [{"file": source.name}]
        source, recording = source.parent, None
    else:
        recording = _recording_of(source)
        entries = _index_entries(source)
    if not -len(entries) <= index < len(entries):
        raise IndexError(
            f"index: {index}; the recording {str(path)!r} has {len(entries)} episode(s)"
        )
    return _read_archive(source / entries[index]["file"], recording)
