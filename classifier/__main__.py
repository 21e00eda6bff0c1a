"""`python -m classifier`: the `sgclassify` command."""

try:
    from classifier.cli import command
except KeyboardInterrupt:  # Ctrl-C while the package itself loads
    raise SystemExit(130) from None

command()
