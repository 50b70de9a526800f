"""plan room: predict memory, software fit and a step-time floor before anything runs (torch-free)."""
