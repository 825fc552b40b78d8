from skillswap.cli import main

raise SystemExit(main())
