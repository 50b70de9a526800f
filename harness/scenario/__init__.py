"""scenario room: YAML file -> validated Scenario -> list of RunConfig.

Deliberately imports nothing: `harness.contract.presets` is standard-library data that the worker reads too,
and importing it must not pull in pydantic or yaml.
"""
