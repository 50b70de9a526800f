"""probe room: what this machine is and can do. Host facts here; torch facts come from a worker."""
