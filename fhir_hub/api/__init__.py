"""REST API: one module per FHIR interaction, sharing context, responses and error handling."""
