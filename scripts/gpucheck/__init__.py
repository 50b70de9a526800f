"""scripts/gpu-check and scripts/gpu-table: the prepared GPU check (standard library only until the wheels are in).

Why this is a program of the checkout beside the package, not a `harness gpu-check` command (decided in issue 29):
- It starts where harness cannot: on the lent GPU node `python3` has torch but not pydantic, rich or pandas, and
  the console script is not installed. Its first step installs the carried wheels (../shared/gpu/prepare-wheels)
  into a private folder and puts it on PYTHONPATH for every later step. `python3 -m harness gpu-check` would
  import harness.cli, and with it pydantic, before that step could run; only a standard-library entry can.
- It drives the checkout, not an installed harness: `pytest -m gpu` over tests/, the scenarios/gpu-check-*.yaml
  files, the .whl/ folder, scripts/gpu-table. An installed wheel has none of them, so as a package command it
  would be a command that fails for every user outside a checkout.
- It runs harness only as a user would, `python3 -m harness ...` in subprocesses (plus gpu-table's loader after
  the wheels are in): it adds no definition the package needs, so the package's rooms stay as they are.
tests/test_gpu_check.py rehearses it on the CPU (`--cpu`), so that living outside the package cannot let it rot.
"""
