"""Authentication and authorisation: tokens and keys, SMART scopes, the caller, and the access policy."""
