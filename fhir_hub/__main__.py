from fhir_hub.cli import main

raise SystemExit(main())
