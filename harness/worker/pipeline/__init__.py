"""pipeline room (worker side): the full-duplex frame loop and its stage timers."""
