"""`python -m classifier`: the `sgclassify` command."""

try:
    from classifier.cli import main
except KeyboardInterrupt:  # Ctrl-C while the package itself loads
    raise SystemExit(130) from None

raise SystemExit(main())
