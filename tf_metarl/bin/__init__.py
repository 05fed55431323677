"""absl command-line binaries."""
