"""Match a failed run against the signature table; unknown failures keep their stderr tail."""

from __future__ import annotations

from typing import Optional

from harness.diagnosis.signatures import KILLED, KILLED_CAUSE, SIGNATURES, TIMEOUT, UNKNOWN, Context
from harness.records.machine import Machine
from harness.records.schema import Diagnosis
from harness.scenario.model import RunConfig


def diagnose(run: RunConfig, *, error_type: str = "", error_message: str = "", stderr_tail: str = "",
             signal_name: Optional[str] = None, exit_code: Optional[int] = None, timed_out: bool = False,
             timeout_s: Optional[float] = None, last_phase: str = "", machine: Optional[Machine] = None,
             peak_rss_bytes: Optional[int] = None) -> Diagnosis:
    ctx = Context(run=run, machine=machine, peak_rss_bytes=peak_rss_bytes)
    if timed_out:
        during = f" while {last_phase}" if last_phase else ""
        hint = (" the first torch.compile of a 7B model can take minutes;" if run.compile else "")
        return Diagnosis(kind=TIMEOUT,
                         cause=f"no result within {timeout_s:g} s{during}; the worker was killed",
                         remedy=f"raise `timeout_s` for this run (a run may set its own);{hint} check "
                                "logs/<run>.stderr.log for where it stalled")
    text = f"{error_type}: {error_message}\n{stderr_tail}" if error_type else stderr_tail
    for signature in SIGNATURES:
        match = signature.pattern.search(text)
        if match:
            return Diagnosis(kind=signature.kind, cause=signature.cause(match, ctx),
                             remedy=signature.remedy(match, ctx))
    if signal_name == "SIGKILL":
        return Diagnosis(kind=KILLED, cause=KILLED_CAUSE(None, ctx),  # type: ignore[arg-type]
                         remedy="check `dmesg` for 'Out of memory: Killed process'; give the worker more RAM, "
                                "use `quantize: int8`, or run on a GPU (`harness plan` predicts host memory)")
    if signal_name is not None:
        return Diagnosis(kind="crashed", cause=f"the worker died from {signal_name} (a native crash in torch, a "
                                               "CUDA library or the driver)",
                         remedy="see logs/<run>.stderr.log; run `harness probe` to check the driver and torch build")
    first = error_message.strip().splitlines()[0] if error_message.strip() else f"exit code {exit_code}"
    return Diagnosis(kind=UNKNOWN, cause=f"{error_type + ': ' if error_type else ''}{first}"[:500],
                     remedy="not a known failure: see the stderr tail below and logs/<run>.stderr.log")
