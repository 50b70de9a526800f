"""scenario room: YAML file -> validated Scenario -> list of RunConfig."""

from harness.scenario.load import ScenarioError, load_scenario
from harness.scenario.model import RunConfig, Scenario

__all__ = ["RunConfig", "Scenario", "ScenarioError", "load_scenario"]
