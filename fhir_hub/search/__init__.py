"""Search: index keys written with each resource, and the parsing and running of criteria."""
