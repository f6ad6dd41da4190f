from bench.rest import main

raise SystemExit(main())
