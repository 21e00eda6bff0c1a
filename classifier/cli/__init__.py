"""The command-line room: `sgclassify`, argument parsing and printing only.

One module per command (`validate`, `check`, `packets`, `classify`), each with `add_parser`
and `run`; `main` assembles the parser and turns every `ClassifierError` into one line and an
exit code. May import every other room; nothing imports this but `classifier.__main__`.
"""

from classifier.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
