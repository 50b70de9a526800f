"""Read a scenario YAML file into a Scenario, with errors that name the file, the line and the field."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml
from pydantic import ValidationError

from harness.records.config import RunConfig
from harness.records.exits import UserError
from harness.records.scenario import Persona, Scenario
from harness.scenario.expand import ExpansionError, expand_runs
from harness.scenario.hub import HubError, is_hub_id, resolve_hub_weights

MAX_SCENARIO_CHARS = 1_000_000  # a scenario is a page of YAML; this bounds what a stray file costs


@dataclass(frozen=True)
class ScenarioProblem:
    line: Optional[int]
    field: str
    message: str


class ScenarioError(UserError):
    """An invalid scenario: every problem found, each with its line and field."""

    def __init__(self, path: Path, problems: Sequence[ScenarioProblem]) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__(self.render())

    def __str__(self) -> str:
        return "invalid scenario\n" + self.render()

    def render(self) -> str:
        lines = []
        for p in self.problems:
            where = f"{self.path}:{p.line}" if p.line is not None else f"{self.path}"
            field = f" {p.field}:" if p.field else ""
            lines.append(f"{where}:{field} {p.message}")
        return "\n".join(lines)


@dataclass(frozen=True)
class LoadedScenario:
    path: Path
    scenario: Scenario
    runs: list[RunConfig]
    weights_path: Optional[Path]  # None for synthetic weights
    field_lines: dict[str, int] = dataclasses.field(default_factory=dict)  # top-level field -> its line in the file

    def where(self, field: str) -> str:
        """`file:line` of a top-level field (the file alone when it is not set there), for warnings."""
        line = self.field_lines.get(field)
        return f"{self.path}:{line}" if line is not None else str(self.path)

    @property
    def checkpoint_bytes(self) -> int:
        """Size of the LM checkpoint file (its pages are resident while loading); 0 for synthetic weights."""
        if self.weights_path is None:
            return 0
        lm_file = self.weights_path / "model.safetensors" if self.weights_path.is_dir() else self.weights_path
        return lm_file.stat().st_size if lm_file.exists() else 0


def _field_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _node_line(root: Optional[yaml.Node], loc: Sequence[str | int]) -> Optional[int]:
    """Line (1-based) of the YAML node at `loc`; the deepest node that exists when the path runs out."""
    node = root
    line = root.start_mark.line + 1 if root is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == part), None)
            if match is None:
                return line
            key_node, node = match
            line = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    if node is not None and not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        line = node.start_mark.line + 1
    return line


def _describe_pydantic_error(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "invalid value"))
    if err.get("type") == "extra_forbidden":
        return "unknown field (check the spelling; `harness run --help` lists the scenario fields)"
    if err.get("type") == "missing":
        return "required field is missing"
    if err.get("type") == "string_pattern_mismatch":
        # Names become file names in the output folder: say what is allowed, not the regular expression.
        return (f"names may use letters, digits, '.', '_' and '-', starting with a letter or digit "
                f"(they become file names in the output folder) (got {err.get('input')!r})")
    given = err.get("input")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if given is not None and not isinstance(given, (dict, list)):
        return f"{msg} (got {given!r})"
    return msg


def _strip_pydantic_loc(loc: Sequence[str | int]) -> tuple[str | int, ...]:
    # pydantic appends the validator kind for some unions/annotated types, e.g. ('compile', 'bool').
    return tuple(p for p in loc if p not in {"bool", "function-before[_parse_switch(), bool]"})


def _non_finite(value: Any, loc: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], float]]:
    """Every NaN or infinity in the YAML (`.inf`, `.nan`), wherever it is: no scenario number may be one."""
    if isinstance(value, float) and not math.isfinite(value):
        return [(loc, value)]
    if isinstance(value, dict):
        return [hit for key, item in value.items() for hit in _non_finite(item, loc + (str(key),))]
    if isinstance(value, list):
        return [hit for index, item in enumerate(value) for hit in _non_finite(item, loc + (index,))]
    return []


def _resolve_paths(path: Path, root: Optional[yaml.Node], scenario: Scenario) -> Scenario:
    """Every path the scenario names, made absolute against the scenario file's folder and checked now, once: the
    weights, the persona's voice prompt and tokenizer, and every `python:` interpreter. Nothing downstream (the
    runner, the fleet's nodes, the workers) resolves a path again."""
    base = path.parent
    problems: list[ScenarioProblem] = []

    def problem(loc: tuple[str | int, ...], message: str) -> None:
        problems.append(ScenarioProblem(_node_line(root, loc), _field_path(loc), message))

    def local(value: str, loc: tuple[str | int, ...], what: str) -> str:
        candidate = (base / Path(value).expanduser()).resolve()
        if not candidate.exists():
            problem(loc, f"no such file or directory: {candidate} ({what})")
        return str(candidate)

    def interpreter(value: str, loc: tuple[str | int, ...]) -> str:
        found = shutil.which(value) if "/" not in value else None
        candidate = Path(found) if found else (base / Path(value).expanduser())
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            problem(loc, f"no executable interpreter at {candidate} (python: the environment's bin/python, absolute "
                         "or relative to this file)")
        # absolute, not resolved: a venv's bin/python is a link to the base interpreter and must stay the venv's
        return str(candidate.absolute())

    update: dict[str, Any] = {}
    if is_hub_id(scenario.weights):
        try:
            update["weights"] = resolve_hub_weights(scenario.weights)
        except HubError as exc:
            problem(("weights",), str(exc))
    elif not scenario.uses_synthetic_weights:
        update["weights"] = local(scenario.weights, ("weights",), "use 'synthetic' or a local model.safetensors / "
                                                                  "a folder holding one")
    if scenario.input != "synthetic":
        update["input"] = local(scenario.input, ("input",), "'synthetic' or a .wav recording, relative to this file")
    if isinstance(scenario.persona, Persona):
        persona: dict[str, Any] = {}
        if scenario.persona.voice_prompt:
            persona["voice_prompt"] = local(scenario.persona.voice_prompt, ("persona", "voice_prompt"),
                                            "a 16-bit PCM .wav, relative to this file")
        if scenario.persona.tokenizer:
            persona["tokenizer"] = local(scenario.persona.tokenizer, ("persona", "tokenizer"),
                                         "PersonaPlex's SentencePiece model file, relative to this file")
        if persona:
            update["persona"] = scenario.persona.model_copy(update=persona)
    if scenario.python:
        update["python"] = interpreter(scenario.python, ("python",))
    if scenario.defaults.python:
        update["defaults"] = scenario.defaults.model_copy(
            update={"python": interpreter(scenario.defaults.python, ("defaults", "python"))})
    if any(spec.python for spec in scenario.runs):
        update["runs"] = [spec.model_copy(update={"python": interpreter(spec.python, ("runs", i, "python"))})
                          if spec.python else spec for i, spec in enumerate(scenario.runs)]
    if problems:
        raise ScenarioError(path, problems)
    return scenario.model_copy(update=update) if update else scenario


def load_scenario(path: str | Path) -> LoadedScenario:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(path, [ScenarioProblem(None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(path, [ScenarioProblem(None, "", f"cannot read file: {exc}")]) from None

    if len(text) > MAX_SCENARIO_CHARS:
        raise ScenarioError(path, [ScenarioProblem(None, "", f"{len(text)} characters: not a scenario (at most "
                                                             f"{MAX_SCENARIO_CHARS})")])
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except RecursionError:
        raise ScenarioError(path, [ScenarioProblem(None, "", "not a scenario: nested too deeply")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(path, [ScenarioProblem(line, "", f"not valid YAML: {problem}")]) from None

    if not isinstance(data, dict):
        raise ScenarioError(path, [ScenarioProblem(1, "", "a scenario must be a YAML mapping (name: ..., preset: ...)")])
    non_finite = [ScenarioProblem(_node_line(root, loc), _field_path(loc),
                                  f"must be a finite number (got {value}): every number of a scenario is")
                  for loc, value in _non_finite(data)]
    if non_finite:
        raise ScenarioError(path, non_finite)

    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = _strip_pydantic_loc(err["loc"])
            problems.append(ScenarioProblem(_node_line(root, loc), _field_path(loc), _describe_pydantic_error(err)))
        problems.sort(key=lambda p: p.line or 0)
        raise ScenarioError(path, problems) from None

    scenario = _resolve_paths(path, root, scenario)
    try:
        runs = expand_runs(scenario)
    except ExpansionError as exc:
        raise ScenarioError(path, [ScenarioProblem(_node_line(root, exc.loc), _field_path(exc.loc), exc.message)]) from None

    weights_path = None if scenario.uses_synthetic_weights else Path(scenario.weights)
    lines = {str(key.value): key.start_mark.line + 1 for key, _ in root.value} \
        if isinstance(root, yaml.MappingNode) else {}
    return LoadedScenario(path=path, scenario=scenario, runs=runs, weights_path=weights_path, field_lines=lines)
