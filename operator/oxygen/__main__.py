from oxygen.cli.main import main

raise SystemExit(main())
