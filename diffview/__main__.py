from diffview.cli import main

raise SystemExit(main())
