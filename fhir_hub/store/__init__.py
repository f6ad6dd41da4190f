"""Storage: the MongoDB resource store, the embedded nx-27017 server, and the one write path."""
