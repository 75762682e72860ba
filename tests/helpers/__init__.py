"""What several test modules share: a tiny weights file, the CLI run in-process or as a process,
and tiny training options. No test module imports another test module; they import from here."""
