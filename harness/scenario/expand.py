"""Turn a validated Scenario into the list of fully resolved RunConfigs."""

from __future__ import annotations

import itertools
import math
from typing import Any

from harness.records.config import DType, Offload, Quantize, RunConfig
from harness.records.scenario import Matrix, RunSpec, Scenario, auto_run_name

# Derived from the models, never listed by hand: a field added to RunSpec / Matrix is expanded without more edits.
_RUN_FIELDS = tuple(name for name in RunSpec.model_fields if name != "name")
_MATRIX_AXES = tuple(name for name in Matrix.model_fields if name != "exclude")
# Every run is a worker process of minutes: a matrix past this is a mistake (repeated values, a runaway
# generator), refused with its count before anything is expanded.
MAX_RUNS = 1000


class ExpansionError(ValueError):
    """A scenario that validates field by field but not as a whole (e.g. two runs with one name)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def _resolve(defaults: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    merged = dict(defaults)
    merged.update({k: v for k, v in spec.items() if v is not None and k in _RUN_FIELDS})
    return merged


def _matches(cfg: dict[str, Any], pattern: RunSpec) -> bool:
    wanted = {k: v for k, v in pattern.model_dump().items() if v is not None and k != "name"}
    return all(cfg[k] == v for k, v in wanted.items())


def _matrix_runs(matrix: Matrix, defaults: dict[str, Any]) -> list[dict[str, Any]]:
    axes = [(axis, getattr(matrix, axis)) for axis in _MATRIX_AXES if getattr(matrix, axis)]
    if not axes:
        raise ExpansionError(("matrix",), "matrix needs at least one axis with values (device, dtype, ...)")
    names = [axis for axis, _ in axes]
    count = math.prod(len(values) for _, values in axes)
    if count > MAX_RUNS:
        raise ExpansionError(("matrix",), f"expands to {count} runs ({' x '.join(str(len(v)) for _, v in axes)}); "
                                          f"at most {MAX_RUNS} are allowed (repeated values? split the scenario)")
    repeated = [axis for axis, values in axes if len(set(map(str, values))) < len(values)]
    if repeated:
        raise ExpansionError(("matrix", repeated[0]), f"matrix axis {repeated[0]} repeats a value: each "
                                                      "combination would run twice under one name")
    runs = []
    for combo in itertools.product(*(values for _, values in axes)):
        cfg = _resolve(defaults, dict(zip(names, combo)))
        if not any(_matches(cfg, pattern) for pattern in matrix.exclude):
            runs.append(cfg)
    return runs


def _check_quantize(loc: tuple[str | int, ...], cfg: dict[str, Any]) -> None:
    """Each scheme's dtypes (harness.contract.quantized) and no offload with the harness's own layers (built for
    a whole LM on one device; a 4-bit LM fits where offload would be needed)."""
    quantize = Quantize(cfg["quantize"])
    if quantize is Quantize.none:
        return
    dtype = DType(cfg["dtype"]).value
    if dtype not in quantize.dtypes:
        allowed = " or ".join(quantize.dtypes)
        raise ExpansionError(loc + ("dtype",), f"quantize: {quantize.value} runs with dtype {allowed} (16-bit "
                                               f"activations), not {dtype}")
    if quantize.harness_only and Offload(cfg["offload"]) is not Offload.none:
        raise ExpansionError(loc + ("offload",), f"quantize: {quantize.value} runs without offload (offload: none): "
                                                 "its layers are built for the whole LM on one device")


def expand_runs(scenario: Scenario) -> list[RunConfig]:
    defaults = scenario.defaults.model_dump()
    if defaults.get("python") is None:
        defaults["python"] = scenario.python
    located: list[tuple[tuple[str | int, ...], dict[str, Any], str | None]] = []
    if scenario.matrix is not None:
        for cfg in _matrix_runs(scenario.matrix, defaults):
            located.append((("matrix",), cfg, None))
    for index, spec in enumerate(scenario.runs):
        located.append((("runs", index), _resolve(defaults, spec.model_dump()), spec.name))
    if not located:
        raise ExpansionError(("runs",), "the scenario defines no runs: add a `runs:` list or a `matrix:`")
    if len(located) > MAX_RUNS:
        raise ExpansionError(("runs",), f"{len(located)} runs; at most {MAX_RUNS} are allowed")

    configs: list[RunConfig] = []
    seen: dict[str, tuple[str | int, ...]] = {}
    for loc, cfg, explicit_name in located:
        usual = scenario.serving_for(cfg)
        if cfg.get("serving") is None:
            cfg = {**cfg, "serving": usual}
        _check_quantize(loc, cfg)
        name = explicit_name or auto_run_name(cfg, usual)
        if name in seen:
            raise ExpansionError(
                loc + (("name",) if explicit_name else ()),
                f"two runs are both named {name!r}; give one of them a distinct `name:`",
            )
        seen[name] = loc
        configs.append(RunConfig(name=name, **cfg))
    return configs
