"""One module per fault scenario; each has ``run(quick: bool, keep_logs: Path | None) -> Tally``."""
