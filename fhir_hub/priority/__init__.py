"""The priority record of a person in a high-risk group (issue 18): kept current as their data arrive."""
