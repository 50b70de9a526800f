"""scenario room: YAML file -> validated Scenario -> list of RunConfig.

Deliberately imports nothing: `harness.scenario.presets` is standard-library data that the worker reads too,
and importing it must not pull in pydantic or yaml.
"""
