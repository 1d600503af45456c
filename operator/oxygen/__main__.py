from oxygen.cli.entry import main

raise SystemExit(main())
