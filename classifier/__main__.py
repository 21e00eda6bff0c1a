from classifier.cli import main

raise SystemExit(main())
