"""Diagnose a failed worker (kept for harness.records.assemble) with the same engine as `harness diagnose`."""

from __future__ import annotations

from typing import Optional

from harness.diagnosis.context import Context, gpu_from_machine
from harness.diagnosis.engine import diagnose_text
from harness.diagnosis.remedies import killed_cause
from harness.diagnosis.signatures import KILLED, TIMEOUT, UNKNOWN
from harness.records.config import RunConfig
from harness.records.machine import Machine
from harness.records.schema import Diagnosis


def diagnose(run: RunConfig, *, error_type: str = "", error_message: str = "", stderr_tail: str = "",
             signal_name: Optional[str] = None, exit_code: Optional[int] = None, timed_out: bool = False,
             timeout_s: Optional[float] = None, last_phase: str = "", machine: Optional[Machine] = None,
             peak_rss_bytes: Optional[int] = None) -> Diagnosis:
    if timed_out:
        during = f" while {last_phase}" if last_phase else ""
        hint = (" the first torch.compile of a 7B model can take minutes;" if run.compile else "")
        limit = f"{timeout_s:g} s" if timeout_s is not None else "the time limit"
        return Diagnosis(kind=TIMEOUT, cause=f"no result within {limit}{during}; the worker was killed",
                         remedy=f"raise `timeout_s` for this run (a run may set its own);{hint} check "
                                "logs/<run>.stderr.log for where it stalled")
    # the worker's own exception is what ended it: it goes last, where the engine looks first
    error = f"{error_type}: {error_message}" if error_type else error_message
    text = f"{stderr_tail}\n{error}" if error else stderr_tail
    ctx = Context(run=run, machine=machine, peak_rss_bytes=peak_rss_bytes, gpu=gpu_from_machine(machine),
                  os=(machine.os.lower() if machine else ""))
    finding = diagnose_text(text, ctx)
    if finding.known:
        return Diagnosis(kind=finding.kind, cause=finding.cause, remedy=finding.remedy)
    if signal_name == "SIGKILL":
        return Diagnosis(kind=KILLED, cause=killed_cause(None, ctx),
                         remedy="check `dmesg` for 'Out of memory: Killed process'; give the worker more RAM, "
                                "use `quantize: int8`, or run on a GPU (`harness plan` predicts host memory)")
    if signal_name is not None:
        return Diagnosis(kind="crashed", cause=f"the worker died from {signal_name} (a native crash in torch, a "
                                               "CUDA library or the driver)",
                         remedy="see logs/<run>.stderr.log; run `harness probe` to check the driver and torch build")
    first = error_message.strip().splitlines()[0] if error_message.strip() else f"exit code {exit_code}"
    return Diagnosis(kind=UNKNOWN, cause=f"{error_type + ': ' if error_type else ''}{first}"[:500],
                     remedy="not a known failure: see the stderr tail below and logs/<run>.stderr.log")
