"""CockroachDB's certificate recipe (CA, node and client certificates) and their file names."""
